/*
 * An adaptive game soundtrack through refrain's C ABI: a live session whose intensity
 * follows the "game" (calm, then a fight every 8 bars), with a stinger and a section change,
 * rendered offline to a 60-second 32-bit float WAV.
 *
 *   adaptive_session OUT.wav [REQUEST_JSON]
 *
 * Build (from the repository root, after `cargo build -p refrain-capi`):
 *   gcc examples/c/adaptive_session.c -Icapi/include target/debug/librefrain_capi.a \
 *       -lpthread -ldl -lm -o adaptive_session
 */
#include "refrain.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECONDS 60
#define BUFFER_FRAMES 256

static void put_u32(FILE *f, uint32_t v) {
    unsigned char b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
    fwrite(b, 1, 4, f);
}

static void put_u16(FILE *f, uint16_t v) {
    unsigned char b[2] = {v & 0xff, (v >> 8) & 0xff};
    fwrite(b, 1, 2, f);
}

static int fail(const char *what, RefrainStatus status) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)status, refrain_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT.wav [REQUEST_JSON]\n", argv[0]);
        return 2;
    }
    const char *request = argc > 2 ? argv[2]
                                   : "{\"style\":\"synthwave\",\"bpm\":112,\"seed\":7,"
                                     "\"intensity\":0.3,\"think\":\"none\"}";
    RefrainSession *session = NULL;
    RefrainStatus status = refrain_session_create(request, &session);
    if (status != REFRAIN_STATUS_OK) return fail("refrain_session_create", status);

    RefrainPosition position;
    refrain_session_position(session, &position);
    const uint32_t rate = position.sample_rate;
    const uint64_t total = (uint64_t)SECONDS * rate;
    float *audio = malloc(sizeof(float) * 2 * total);
    if (!audio) return 1;

    /* The "game": every 8 bars the fight starts or ends; a stinger marks bar 12, and the
       music moves to its next section at bar 20. */
    const float levels[] = {1.0f, 0.3f, 0.7f};
    uint64_t next_change_bar = 8, level = 0, rendered = 0;
    int stinger_sent = 0, section_sent = 0;
    while (rendered < total) {
        size_t frames = total - rendered < BUFFER_FRAMES ? (size_t)(total - rendered) : BUFFER_FRAMES;
        size_t written = 0;
        status = refrain_session_render(session, audio + 2 * rendered, frames, REFRAIN_RENDER_WAIT,
                                        &written);
        if (status != REFRAIN_STATUS_OK) return fail("refrain_session_render", status);
        rendered += frames;

        refrain_session_position(session, &position);
        if (position.bar + 1 >= next_change_bar) {
            uint64_t at = 0;
            status = refrain_session_set_intensity(session, levels[level % 3], REFRAIN_QUANTUM_BAR,
                                                   &at);
            if (status != REFRAIN_STATUS_OK) return fail("refrain_session_set_intensity", status);
            printf("bar %llu: intensity %.1f from frame %llu\n",
                   (unsigned long long)position.bar + 1, levels[level % 3],
                   (unsigned long long)at);
            level++;
            next_change_bar += 8;
        }
        if (!stinger_sent && position.bar >= 11) {
            refrain_session_queue(session, REFRAIN_CONTROL_STINGER, REFRAIN_QUANTUM_BEAT, NULL);
            stinger_sent = 1;
        }
        if (!section_sent && position.bar >= 19) {
            refrain_session_queue(session, REFRAIN_CONTROL_NEXT_SECTION, REFRAIN_QUANTUM_BAR, NULL);
            section_sent = 1;
        }
    }

    size_t needed = 0;
    refrain_session_stats_json(session, NULL, 0, &needed);
    char *stats = malloc(needed);
    if (stats && refrain_session_stats_json(session, stats, needed, NULL) == REFRAIN_STATUS_OK)
        printf("%s\n", stats);
    free(stats);
    refrain_session_free(session);

    FILE *f = fopen(argv[1], "wb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    const uint32_t data_bytes = (uint32_t)(total * 2 * sizeof(float));
    fwrite("RIFF", 1, 4, f);
    put_u32(f, 36 + data_bytes);
    fwrite("WAVEfmt ", 1, 8, f);
    put_u32(f, 16);
    put_u16(f, 3); /* IEEE float */
    put_u16(f, 2);
    put_u32(f, rate);
    put_u32(f, rate * 2 * sizeof(float));
    put_u16(f, 2 * sizeof(float));
    put_u16(f, 32);
    fwrite("data", 1, 4, f);
    put_u32(f, data_bytes);
    fwrite(audio, sizeof(float), total * 2, f); /* little-endian hosts */
    fclose(f);
    free(audio);
    return 0;
}
