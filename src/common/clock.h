/*
 * clock.h — monotonic and wall clocks in explicit units.
 *
 * Threading: thread-safe. Source: clock_gettime(2).
 */
#ifndef TRB_SRC_COMMON_CLOCK_H
#define TRB_SRC_COMMON_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** CLOCK_MONOTONIC in milliseconds (arbitrary epoch; never jumps back). */
int64_t trb_clock_mono_ms(void);
/** CLOCK_MONOTONIC in nanoseconds. */
int64_t trb_clock_mono_ns(void);
/** CLOCK_REALTIME in microseconds since the Unix epoch. */
int64_t trb_clock_wall_us(void);
/** Process CPU time (user + system, all threads) in nanoseconds. */
int64_t trb_clock_cpu_ns(void);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_COMMON_CLOCK_H */
