/* ws.h: the WebSocket protocol core (RFC 6455) with no I/O and no clock: the opening handshake
 * check and Sec-WebSocket-Accept, an incremental decoder of client frames that reassembles
 * messages and enforces every receiving rule of the RFC (close codes to send on a violation), and
 * an encoder of server frames. ws_hub.c puts it on a connection. */
#ifndef P2P_HTTP_WS_H
#define P2P_HTTP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

/* Opcodes (RFC 6455 section 5.2). */
enum http_ws_opcode {
    HTTP_WS_CONT = 0x0,
    HTTP_WS_TEXT = 0x1,
    HTTP_WS_BINARY = 0x2,
    HTTP_WS_CLOSE = 0x8,
    HTTP_WS_PING = 0x9,
    HTTP_WS_PONG = 0xA,
};

/* Close codes (section 7.4.1) the node sends or reports. */
enum http_ws_close_code {
    HTTP_WS_NORMAL = 1000,
    HTTP_WS_GOING_AWAY = 1001,
    HTTP_WS_PROTOCOL_ERROR = 1002,
    HTTP_WS_UNSUPPORTED = 1003,
    HTTP_WS_NO_STATUS = 1005, /* reported for a close frame without a code; never sent */
    HTTP_WS_INVALID_DATA = 1007,
    HTTP_WS_POLICY = 1008,
    HTTP_WS_TOO_BIG = 1009,
    HTTP_WS_INTERNAL = 1011,
};

#define HTTP_WS_KEY_LEN         24  /* base64 of the 16-byte Sec-WebSocket-Key */
#define HTTP_WS_ACCEPT_LEN      28  /* base64 of a SHA-1 digest */
#define HTTP_WS_MAX_CONTROL     125 /* payload of a control frame (section 5.5) */
#define HTTP_WS_MAX_HEADER      14  /* longest frame header: 2 + 8 length + 4 mask */
#define HTTP_WS_MAX_REASON      123 /* close reason after the 2-byte code */
#define HTTP_WS_MAX_CLOSE_FRAME (2 + HTTP_WS_MAX_CONTROL)

/* --- opening handshake (section 4.2.1) ----------------------------------------------------- */

/* Computes Sec-WebSocket-Accept for a Sec-WebSocket-Key (as sent, key_len bytes): base64 of the
 * SHA-1 of the key and the RFC's GUID, written NUL-terminated to out. Returns 0, or -EIO when
 * the digest failed. The key is not checked here (see http_ws_handshake). */
int http_ws_accept(const char *key, size_t key_len, char out[HTTP_WS_ACCEPT_LEN + 1]);

/* Checks the WebSocket headers of an upgrade request (headers as parsed, names compared without
 * case, a repeated header read as one comma-separated list): Upgrade has the token "websocket",
 * Connection has the token "upgrade", Sec-WebSocket-Version is 13, Sec-WebSocket-Key is base64 of
 * 16 bytes. On success writes the Sec-WebSocket-Accept value to accept and returns 0. Otherwise
 * returns -EPROTONOSUPPORT for a missing or other version (answer 426 with
 * "Sec-WebSocket-Version: 13") or -EINVAL for anything else (answer 400), with *why a static
 * reason. The method (GET) and HTTP version are the caller's to check. */
int http_ws_handshake(const http_header_t *headers, size_t n_headers,
                      char accept[HTTP_WS_ACCEPT_LEN + 1], const char **why);

/* --- decoder of client frames -------------------------------------------------------------- */

/* Incremental UTF-8 validator (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
typedef struct http_ws_utf8 {
    uint8_t need;   /* continuation bytes still expected */
    uint8_t lo, hi; /* allowed range of the next continuation byte */
} http_ws_utf8_t;

/* Feeds bytes to v. Returns 0 while the text is valid so far, -EILSEQ at the first invalid byte
 * (v is then unusable). */
int http_ws_utf8_feed(http_ws_utf8_t *v, const uint8_t *buf, size_t len);

/* True when the bytes fed so far end on a character boundary. */
bool http_ws_utf8_complete(const http_ws_utf8_t *v);

/* What one http_ws_decode call delivers: a whole message or a control frame. */
typedef struct http_ws_msg {
    int opcode;          /* HTTP_WS_TEXT, _BINARY (reassembled), _PING, _PONG or _CLOSE */
    const uint8_t *data; /* unmasked payload, followed by a NUL byte (not counted); valid until
                          * the next call on the decoder. TEXT is valid UTF-8. */
    size_t len;
    int close_code;     /* CLOSE: the code sent, HTTP_WS_NO_STATUS when the payload was empty */
    const char *reason; /* CLOSE: the UTF-8 reason (points into data), "" when none */
    size_t reason_len;
} http_ws_msg_t;

enum http_ws_dec_state {
    HTTP_WS_DEC_HEADER,  /* collecting a frame header */
    HTTP_WS_DEC_PAYLOAD, /* collecting a frame's payload */
    HTTP_WS_DEC_CLOSED,  /* a close frame was delivered: later bytes are ignored */
    HTTP_WS_DEC_FAILED,  /* a protocol error: close_code says what to send */
};

/* The decoder of one connection. Memory: this struct plus the message being reassembled, grown
 * as its bytes arrive (never past max_message). Fields are private except state and close_code. */
typedef struct http_ws_dec {
    int state;      /* enum http_ws_dec_state */
    int close_code; /* FAILED: the close code to send (1002, 1007, 1009 or 1011) */
    size_t max_message;
    /* the frame being read */
    uint8_t hdr[HTTP_WS_MAX_HEADER];
    uint8_t hdr_have, hdr_need;
    uint8_t opcode; /* this frame's */
    bool fin;
    uint8_t mask[4];
    uint64_t payload_len, payload_have;
    /* a control frame's payload (they may arrive in the middle of a fragmented message) */
    uint8_t ctl[HTTP_WS_MAX_CONTROL + 1];
    /* the data message being reassembled */
    bool in_message;  /* a first fragment arrived without FIN */
    uint8_t msg_type; /* HTTP_WS_TEXT or HTTP_WS_BINARY */
    uint32_t fragments;
    uint8_t *msg;
    size_t msg_len, msg_cap;
    http_ws_utf8_t utf8;
} http_ws_dec_t;

/* Initialises d. max_message bounds one message, all fragments together (0 or more than
 * WS_MAX_MESSAGE means WS_MAX_MESSAGE). */
void http_ws_dec_init(http_ws_dec_t *d, size_t max_message);

/* Releases the message buffer (d may be NULL). d can be initialised again afterwards. */
void http_ws_dec_free(http_ws_dec_t *d);

/* Feeds len bytes of the client's stream (any split). Sets *used to the bytes consumed and
 * returns 1 when a message or control frame is complete (in *out, valid until the next call;
 * feed the rest of buf next), 0 when every byte was consumed and more are needed, or a negative
 * errno for a violation: -EPROTO (close 1002), -EILSEQ (1007), -EMSGSIZE (1009), -ENOMEM (1011);
 * d->close_code holds the code and every later call returns the same error. After a CLOSE is
 * delivered the rest of the stream is consumed and ignored (returns 0). */
int http_ws_decode(http_ws_dec_t *d, const uint8_t *buf, size_t len, size_t *used,
                   http_ws_msg_t *out);

/* True for a close code a peer may send (1000-1003, 1007-1014, 3000-4999). */
bool http_ws_close_code_valid(int code);

/* --- encoder of server frames (unmasked) ---------------------------------------------------- */

/* Writes the header of a final (fin) or non-final frame of opcode with a payload of len bytes to
 * out (at least HTTP_WS_MAX_HEADER bytes). The payload follows unchanged. Returns the header
 * length (2, 4 or 10), or -EINVAL for an unknown opcode or a control frame that is not final or
 * longer than HTTP_WS_MAX_CONTROL. */
int http_ws_header(uint8_t *out, int opcode, bool fin, uint64_t len);

/* Writes a whole ping or pong frame with payload (len <= HTTP_WS_MAX_CONTROL) to out (at least
 * 2 + len bytes). Returns its length or -EINVAL. */
int http_ws_control(uint8_t *out, int opcode, const void *payload, size_t len);

/* Writes a whole close frame to out (HTTP_WS_MAX_CLOSE_FRAME bytes suffice): no payload when
 * code is 0, else the code and a UTF-8 reason (may be NULL when reason_len is 0) of at most
 * HTTP_WS_MAX_REASON bytes. Returns its length, or -EINVAL for a code a peer may not receive
 * (see http_ws_close_code_valid), a reason too long or not UTF-8. */
int http_ws_close_frame(uint8_t *out, int code, const char *reason, size_t reason_len);

#endif
