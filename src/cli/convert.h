/* convert.h: JSON <-> msgpack conversion and text output for the p2p-rpc client. */
#ifndef P2P_CLI_CONVERT_H
#define P2P_CLI_CONVERT_H

#include <stdio.h>
#include <jansson.h>
#include <msgpack.h>

/* Packs a JSON value as msgpack (integers stay integers, reals become float64). */
void cli_json_to_msgpack(const json_t *j, msgpack_packer *pk);

/* Converts a msgpack object to a new JSON value: bin and strings that are not UTF-8 become base64
 * strings, non-string map keys their compact JSON text, ext null. Never NULL (null on no memory
 * or when nested deeper than the RPC limit). */
json_t *cli_msgpack_to_json(const msgpack_object *o);

/* Text output: a string raw, a map as "key: value" lines, an array one item a line (maps as
 * blocks separated by blank lines); nested values in compact JSON. */
void cli_print_text(FILE *f, const json_t *j);

/* Text output of a system.*.node.methods answer: one method per line, then its parameters. */
void cli_print_methods(FILE *f, const json_t *j);

#endif
