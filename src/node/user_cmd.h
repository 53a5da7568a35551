/* user_cmd.h: the `p2p-node user` subcommands (user_cmd.c). */
#ifndef P2P_NODE_USER_CMD_H
#define P2P_NODE_USER_CMD_H

/* Runs `p2p-node user add NAME --role ROLE [--replace]` (password: one line on stdin),
 * `user list` or `user remove NAME`, with argv after "user" (config flags such as --data-dir
 * allowed anywhere). Returns the exit code: 0 done, 1 failed (one line on stderr: user exists,
 * no such user, database error), 2 usage. */
int node_cmd_user(int argc, char **argv);

#endif
