/* replay.c: runs a fuzz harness over committed corpus files without libFuzzer, so that the
 * corpora replay as ordinary tests (`meson test --suite fuzz`) under the normal and sanitizer
 * builds. Usage: replay DIR|FILE... ; exits 0 when every file ran (a crash fails the test). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef REPLAY_MAX_FILE
#define REPLAY_MAX_FILE (1u << 20) /* larger corpus files are an error, not an input */
#endif
#ifndef REPLAY_MAX_FILES
#define REPLAY_MAX_FILES 100000 /* files replayed from one directory */
#endif

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    uint8_t *buf = malloc(REPLAY_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, REPLAY_MAX_FILE + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > REPLAY_MAX_FILE) {
        fprintf(stderr, "replay: %s: %s\n", path, err ? "read error" : "file too large");
        free(buf);
        return -EIO;
    }
    /* An exact-size copy lets ASan catch reads past the input's end. */
    uint8_t *in = malloc(n ? n : 1);
    if (!in) {
        free(buf);
        return -ENOMEM;
    }
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 0;
}

static int skip_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static int run_dir(const char *dir, size_t *count)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, skip_dot, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -errno;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && i < REPLAY_MAX_FILES) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
            struct stat st;
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                rc = run_file(path);
                if (rc == 0) (*count)++;
            }
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rc = S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) : run_file(argv[i]);
        if (rc == 0 && !S_ISDIR(st.st_mode)) count++;
        if (rc < 0) return 1;
    }
    printf("replayed %zu inputs\n", count);
    if (count == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    return 0;
}
