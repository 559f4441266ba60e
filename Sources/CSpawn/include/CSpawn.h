#ifndef NSGROUP_CSPAWN_H
#define NSGROUP_CSPAWN_H

#include "ns_report.h"
#include "ns_spawn.h"

#endif
