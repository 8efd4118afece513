/*
 * A live session through refrain's C ABI against a null sink in real time: a loop pulls
 * 256-frame buffers at the real-time rate in REALTIME mode (as an audio callback would),
 * changes the intensity every 8 bars, and prints the session's statistics as JSON
 * (first_audio_ms, underruns, frames, transitions).
 *
 *   realtime_session SECONDS [REQUEST_JSON]
 *
 * Build: gcc examples/c/realtime_session.c -Icapi/include PATH/librefrain_capi.a \
 *            -lpthread -ldl -lm -o realtime_session
 */
#define _POSIX_C_SOURCE 200809L
#include "refrain.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BUFFER_FRAMES 256

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 60.0;
    const char *request = argc > 2 ? argv[2]
                                   : "{\"style\":\"synthwave\",\"bpm\":112,\"seed\":7,"
                                     "\"intensity\":0.7,\"think\":\"none\"}";
    double started = now_seconds();
    RefrainSession *session = NULL;
    RefrainStatus status = refrain_session_create(request, &session);
    if (status != REFRAIN_STATUS_OK) {
        fprintf(stderr, "create failed: %s\n", refrain_last_error());
        return 1;
    }
    RefrainPosition position;
    refrain_session_position(session, &position);
    const double period = (double)BUFFER_FRAMES / position.sample_rate;
    const uint64_t pulls = (uint64_t)(seconds / period);
    static float buffer[BUFFER_FRAMES * 2];
    const float levels[] = {0.3f, 1.0f, 0.6f};
    uint64_t next_change_bar = 8, level = 0;
    for (uint64_t i = 0; i < pulls; i++) {
        double due = started + period * (double)i;
        double wait = due - now_seconds();
        if (wait > 0) {
            struct timespec t = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&t, NULL);
        }
        refrain_session_render(session, buffer, BUFFER_FRAMES, REFRAIN_RENDER_REALTIME, NULL);
        if (i % 64 == 0) {
            refrain_session_position(session, &position);
            if (position.bar + 1 >= next_change_bar) {
                refrain_session_set_intensity(session, levels[level++ % 3], REFRAIN_QUANTUM_BAR,
                                              NULL);
                next_change_bar += 8;
            }
        }
    }
    size_t needed = 0;
    refrain_session_stats_json(session, NULL, 0, &needed);
    char *stats = malloc(needed);
    if (stats && refrain_session_stats_json(session, stats, needed, NULL) == REFRAIN_STATUS_OK)
        printf("%s\n", stats);
    free(stats);
    refrain_session_free(session);
    return 0;
}
