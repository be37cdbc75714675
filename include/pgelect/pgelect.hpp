// Everything of pgelect's public API.
#pragma once

#include "pgelect/elector.hpp"
#include "pgelect/errors.hpp"
#include "pgelect/lock.hpp"
#include "pgelect/lock_client.hpp"
#include "pgelect/options.hpp"
