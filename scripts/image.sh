#!/usr/bin/env bash
# Builds cachecar's OCI image from Debian 12 packages alone (no registry, no Docker engine):
#
#   1. builds cachecar and cachecarctl in BUILD_DIR (default build/) if they are not built;
#   2. finds the shared libraries they load (ldd) and the Debian packages that ship them
#      (dpkg -S); the image takes bookworm's current versions of those (security updates
#      included), and says so where one differs from the version built and tested here;
#   3. unpacks those packages and ca-certificates into an empty root with
#      `mmdebstrap --variant=extract`: no shell, no package manager, no maintainer script;
#      drops what nothing runs (docs but copyright files, man pages, and the packages
#      ca-certificates drags in for its maintainer scripts: debconf, openssl), writes the
#      CA bundle those scripts would have written, a non-root user (65532, as distroless),
#      and a package list under /var/lib/dpkg/status.d/ for image scanners;
#   4. checks that the binaries run in that root (chroot), then makes it one layer of an OCI
#      image with umoci: entrypoint cachecar, user 65532, labels with the version and
#      source revision the binary reports.
#
# Output, under IMAGE_DIR (default BUILD_DIR/image):
#   oci/                      an OCI image layout, tagged VERSION
#   cachecar-VERSION.oci.tar  the same as an oci-archive: `podman load -i`, or
#                             `skopeo copy oci-archive:FILE docker://REGISTRY/cachecar:VERSION`
#
# Usage: scripts/image.sh [BUILD_DIR]      (as root, or re-runs itself under sudo)
# Env: DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (default deb.debian.org), SOURCE_DATE_EPOCH
# (default: the commit's time; the image's file times and creation time), IMAGE_DIR,
# IMAGE_NAME (default ghcr.io/cachecar/cachecar, the name k8s/deployment.yaml pulls).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${IMAGE_DIR:-$build/image}
# The name k8s/deployment.yaml pulls; the archive's image carries it.
name=${IMAGE_NAME:-ghcr.io/cachecar/cachecar}

if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=IMAGE_NAME,DEBIAN_MIRROR,DEBIAN_SECURITY_MIRROR,SOURCE_DATE_EPOCH,IMAGE_DIR \
    "$PWD/scripts/image.sh" "$@"
fi

die() { echo "image: $*" >&2; exit 1; }

for tool in mmdebstrap umoci; do
  if ! command -v "$tool" >/dev/null; then
    echo "image: installing $tool (Debian)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >/dev/null
  fi
done

[ -f "$build/build.ninja" ] || die "$build is not a configured build (run scripts/setup.sh first)"
ninja -C "$build" cachecar cachecarctl >/dev/null
bins=("$build/cachecar" "$build/cachecarctl")

# "cachecar 0.1.0 (REVISION)"
read -r _ version revision < <("$build/cachecar" --version)
revision=${revision#(}; revision=${revision%)}
[ -n "$version" ] || die "could not read the version from $build/cachecar --version"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

# The Debian package of every shared library the binaries load.
packages=()
while read -r lib; do
  real=$(readlink -f "$lib")
  owner=""
  for path in "$real" "${real#/usr}" "$lib"; do
    owner=$(dpkg-query -S "$path" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
  done
  [ -n "$owner" ] || die "$lib is not from a Debian package: the image takes only packaged libraries"
  packages+=("$owner")
done < <(ldd "${bins[@]}" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
echo "image: unpacking ${#packages[@]} packages (+ ca-certificates) from Debian bookworm" >&2
# The extract hook runs while the downloaded .debs are still in the target's apt cache.
# shellcheck disable=SC2016  # $1 is mmdebstrap's, expanded by its hook shell
mmdebstrap --quiet --variant=extract --architectures=amd64 \
  --include="$(IFS=,; echo "${packages[*]}"),ca-certificates" \
  --extract-hook='set -e
    mkdir -p "$1/var/lib/dpkg/status.d"
    for deb in "$1"/var/cache/apt/archives/*.deb; do
      pkg=$(dpkg-deb -f "$deb" Package)
      case "$pkg" in
        debconf|openssl)
          # Only ca-certificates'"'"' maintainer scripts use them; nothing runs those here.
          dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n "s|^\./|$1/|p" |
            while read -r f; do [ -d "$f" ] && [ ! -L "$f" ] || rm -f "$f"; done ;;
        *)
          { dpkg-deb -f "$deb" Package; echo "Status: install ok installed";
            dpkg-deb -f "$deb" | grep -v "^Package:"; } >"$1/var/lib/dpkg/status.d/$pkg" ;;
      esac
    done' \
  bookworm "$root" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
  "deb $security bookworm-security main" 2> >(grep -v "^W: skipping mounting" >&2)

for pkg in "${packages[@]}"; do
  here=$(dpkg-query -W -f='${Version}' "$pkg")
  there=$(sed -n 's/^Version: //p' "$root/var/lib/dpkg/status.d/$pkg")
  [ "$here" = "$there" ] ||
    echo "image: $pkg is $there in the image, $here where the binaries were built and tested" >&2
done

# What nothing at run time reads (gconv: iconv's charset modules), and what the container
# runtime provides (resolv.conf, hostname). The copyright files stay: licences of what ships.
find "$root/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
rm -rf "${root:?}/usr/share/"{man,info,locale,lintian,debconf,perl5,pixmaps,bash-completion,bug} \
       "${root:?}/usr/bin" "${root:?}/usr/sbin" "${root:?}/sbin" "${root:?}/bin" \
       "$root/var/cache" "$root/var/lib/apt" "$root/var/log" "$root/etc/apt" \
       "$root/etc/ssl/openssl.cnf" "${root:?}/dev" \
       "$root/etc/"{fstab,hostname,resolv.conf} "$root/usr/lib/x86_64-linux-gnu/gconv"
find "$root" -depth -type d -empty ! -path "$root/tmp" -delete

# What ca-certificates' postinst (update-ca-certificates) would have written, and OpenSSL's
# default directory pointing at it as Debian's openssl package does.
mkdir -p "$root/etc/ssl/certs" "$root/usr/lib/ssl"
cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
ln -sfn /etc/ssl/certs "$root/usr/lib/ssl/certs"

# A non-root user of its own, 65532 as in distroless images (k8s/deployment.yaml runs as it).
mkdir -p "$root/etc"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ncachecar:x:65532:65532:cachecar:/var/lib/cachecar:/usr/sbin/nologin\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\ncachecar:x:65532:\n' >"$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
install -d -m 1777 "$root/tmp"
install -d -m 0750 -o 65532 -g 65532 "$root/var/lib/cachecar"
install -d -m 0755 "$root/etc/cachecar" "$root/usr/bin"
install -m 0755 -s "${bins[@]}" "$root/usr/bin/"

shells=$(find "$root" \( -name sh -o -name bash -o -name dash -o -name busybox \) -printf '/%P ')
[ -z "$shells" ] || die "a shell got into the image: $shells"
for b in cachecar cachecarctl; do
  chroot --userspec=65532:65532 "$root" "/usr/bin/$b" --version >/dev/null ||
    die "/usr/bin/$b does not run in the image's root (a library missing?)"
done
find "$root" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"

echo "image: writing the OCI image cachecar:$version ($revision) to $out" >&2
rm -rf "$out/oci" && mkdir -p "$out"
layout="$out/oci"
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci insert --image "$layout:$version" --history.created "$created" \
  --history.created_by "scripts/image.sh" --history.comment "cachecar $version ($revision)" \
  "$root" /
umoci config --image "$layout:$version" --created "$created" \
  --config.user 65532:65532 --config.workingdir /var/lib/cachecar \
  --config.entrypoint /usr/bin/cachecar \
  --config.cmd --config --config.cmd /etc/cachecar/config/cachecar.yaml \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.volume /var/lib/cachecar \
  --config.exposedports 50051/tcp --config.exposedports 9090/tcp \
  --config.stopsignal SIGTERM \
  --config.label "org.opencontainers.image.title=cachecar" \
  --config.label "org.opencontainers.image.description=Kafka topics materialized into LMDB, served over gRPC on localhost" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --config.label "org.opencontainers.image.created=$created"
umoci gc --layout "$layout"
# The archive's one image is named in full, so `podman load` names it so too.
archive="$out/cachecar-$version.oci.tar"
cp -a "$layout" "$work/archive"
sed -i "s|\"org.opencontainers.image.ref.name\":\"$version\"|\"org.opencontainers.image.ref.name\":\"$name:$version\"|" \
  "$work/archive/index.json"
grep -q "$name:$version" "$work/archive/index.json" || die "could not name the archive's image"
tar -C "$work/archive" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -cf "$archive" .
echo "image: $archive ($(du -h "$archive" | cut -f1))" >&2
