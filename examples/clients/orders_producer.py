"""Writes the demo's orders topic as a service using Confluent's serializers would: Avro in
the Schema Registry wire format, the schema (schemas/order.avsc) registered on first use.
scripts/demo.sh runs it:
    .venv/bin/python examples/clients/orders_producer.py BOOTSTRAP REGISTRY_URL"""
import json
import os
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
bootstrap, registry_url = sys.argv[1], sys.argv[2]
with open(os.path.join(root, "schemas", "order.avsc")) as f:
    serialize = AvroSerializer(SchemaRegistryClient({"url": registry_url}), f.read())
with open(os.path.join(root, "examples", "data", "orders.json")) as f:
    orders = json.load(f)

producer = Producer({"bootstrap.servers": bootstrap})
for order in orders:
    value = serialize(order, SerializationContext("orders", MessageField.VALUE))
    producer.produce("orders", key=order["id"], value=value)
if producer.flush(30) != 0:
    sys.exit("orders_producer: the records were not delivered within 30 s")
print(f"demo: produced {len(orders)} Avro records to orders (schema id "
      f"{int.from_bytes(value[1:5], 'big')} in the registry)", file=sys.stderr)
