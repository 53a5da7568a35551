/* transfer.h: `p2p-rpc push LOCAL NODE:PATH` and `p2p-rpc pull NODE:PATH LOCAL`: chunked file
 * transfer through a node's local socket with a window of pipelined file.write / file.read calls,
 * resume from a `.p2p-part` file, and a SHA-256 verified at the end (docs/transfer.md). */
#ifndef P2P_CLI_TRANSFER_H
#define P2P_CLI_TRANSFER_H

#include <stdbool.h>
#include <stdio.h>

/* What the command line gives a transfer. */
typedef struct cli_transfer_opts {
    const char *socket_path; /* the node's local socket */
    const char *token;       /* JWT sent with rpc.auth first, NULL for none */
    double timeout_s;        /* deadline of each chunk call (file.checksum gets more) */
    bool out_json;           /* the result as one JSON line, else a text line */
    bool sync; /* ask the far side to fsync the last chunk (push) / fsync locally (pull) */
} cli_transfer_opts_t;

/* Runs `push LOCAL NODE:PATH` (push true: a = LOCAL, b = NODE:PATH) or `pull NODE:PATH LOCAL`
 * (a = NODE:PATH, b = LOCAL). Shows a progress bar on stderr when it is a terminal, prints the
 * result on stdout and errors on stderr. Returns the process exit code: 0 done, 1 a call, I/O or
 * checksum error, 2 bad arguments. */
int cli_transfer_run(bool push, const char *a, const char *b, const cli_transfer_opts_t *o);

/* Writes the usage lines of push and pull (for p2p-rpc --help). */
void cli_transfer_usage(FILE *f);

#endif
