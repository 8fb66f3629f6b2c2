/* fuzz_replay.c: runs the committed fuzz corpus through the fuzz targets, without libFuzzer.
 *
 * Built with gcc and ASan+UBSan and run by `make test`, so what `make fuzz` once found
 * (and every hand-written seed) keeps being checked after the parsers change. A target
 * aborts on a broken property and the sanitizers on memory errors; a clean run prints
 * "N passed, 0 failed", one test per file.
 *
 *   build/fuzz_replay [DIR...]   each DIR's last component names its target (fuzz_text,
 *                                fuzz_meta or fuzz_bin); default: the dirs under
 *                                core/test/corpus/ */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#ifndef FUZZ_CORPUS_DIR
#define FUZZ_CORPUS_DIR "core/test/corpus"
#endif

typedef int (*fuzz_target)(const uint8_t *data, size_t size);

/* Reads a whole file into an exact-size heap block (so ASan sees reads past it). Returns
 * it (caller frees) or NULL. */
static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto done;
    p = malloc(n ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    *size = (size_t)n;
done:
    fclose(f);
    return p;
}

/* Replays every regular file of dir; returns how many ran, or -1 if dir is unusable. */
static long replay_dir(const char *dir)
{
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    fuzz_target target = strcmp(name, "fuzz_text") == 0   ? fuzz_text_input
                         : strcmp(name, "fuzz_meta") == 0 ? fuzz_meta_input
                         : strcmp(name, "fuzz_bin") == 0  ? fuzz_bin_input
                                                          : NULL;
    DIR *d = target ? opendir(dir) : NULL;
    struct dirent *de;
    long n = 0;

    if (!d) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", dir,
                target ? "cannot open" : "not a fuzz_text, fuzz_meta or fuzz_bin corpus");
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        char path[4096];
        size_t size;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        uint8_t *data = read_file(path, &size);
        if (!data) {
            fprintf(stderr, "fuzz_replay: cannot read %s\n", path);
            n = -1;
            break;
        }
        target(data, size);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    static const char *const dflt[] = { FUZZ_CORPUS_DIR "/fuzz_text",
                                        FUZZ_CORPUS_DIR "/fuzz_meta" };
    const char *const *dirs = argc > 1 ? (const char *const *)argv + 1 : dflt;
    int ndirs = argc > 1 ? argc - 1 : 2;
    long passed = 0, failed = 0;

    for (int i = 0; i < ndirs; i++) {
        long n = replay_dir(dirs[i]);
        if (n < 0) {
            failed++;
            continue;
        }
        printf("fuzz_replay: %s: %ld inputs, every property held\n", dirs[i], n);
        passed += n;
    }
    printf("%ld passed, %ld failed\n", passed, failed);
    return failed ? 1 : 0;
}
