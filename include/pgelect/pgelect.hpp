// Everything of pgelect's public API.
#pragma once

#include "pgelect/config.hpp"
#include "pgelect/elector.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock.hpp"
#include "pgelect/lock_client.hpp"
#include "pgelect/log.hpp"
#include "pgelect/metrics.hpp"
#include "pgelect/options.hpp"
#include "pgelect/service.hpp"
