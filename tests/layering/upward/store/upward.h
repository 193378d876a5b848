// A fixture for the layering_check test: the store may not use rpc (it must fail).
#pragma once

#include "common/status.h"
#include "rpc/errors.h"
