/*
 * cc_auth_rules.h - the broker plugin's pure decisions about a device (SPEC §3): whether a
 * username can name a device, which client id a device may use, which topics it may touch.
 *
 * No mosquitto, SQLite or allocation: every function reads only its arguments (NUL-terminated
 * strings, any bytes) and answers 1 (yes) or 0 (no) (cc_auth_cert_device_id: an id, or 0), so
 * the plugin, common/api/cc_devices.c, tools/ccctl_cert.c and the fuzz targets share one
 * definition. Any thread may call them.
 */
#ifndef CC_AUTH_RULES_H
#define CC_AUTH_RULES_H

#include <stddef.h>
#include <stdint.h>

/* Bytes in a device serial; equals CC_SERIAL_MAX (common/store/cc_store.h, checked there). */
#define CC_AUTH_SERIAL_MAX 64

/* Client ids that start with this (compared case-insensitively) belong to the operators'
 * programs: ingestd ("coldchain-ingestd"), apid's live feed ("coldchain-apid-<pid>-<hex>").
 * No device serial may start with it, so no device may ever present such a client id. */
#define CC_AUTH_OPERATOR_PREFIX "coldchain-"

/* What a device asks to do with a topic (mirrors MOSQ_ACL_* without including mosquitto). */
enum cc_auth_access {
    CC_AUTH_READ = 1,        /* a message is delivered to the device */
    CC_AUTH_WRITE = 2,       /* the device publishes */
    CC_AUTH_SUBSCRIBE = 4,   /* the device subscribes with this filter */
    CC_AUTH_UNSUBSCRIBE = 8, /* the device unsubscribes */
};

/* 1 if name starts with CC_AUTH_OPERATOR_PREFIX, case-insensitively; 0 otherwise or if NULL. */
int cc_auth_name_reserved(const char *name);

/* 1 if username can be a device serial: 1..CC_AUTH_SERIAL_MAX bytes of [A-Za-z0-9._-] and not
 * reserved (cc_auth_name_reserved). Anything else is left to the operators' files. */
int cc_auth_is_device_name(const char *username);

/* 1 if a device logged in as serial may use client_id: only its serial, byte for byte, and
 * only if serial is a device name. NULL arguments answer 0. */
int cc_auth_client_id_allowed(const char *serial, const char *client_id);

/* 1 if a client certificate whose common name is the len bytes at cn may log in as username:
 * cn is a device name (no NUL inside, see cc_auth_is_device_name) equal to username. */
int cc_auth_cert_name_allowed(const char *cn, size_t len, const char *username);

/* A device certificate names the devices row it was issued for with this URI in its
 * subjectAltName, followed by devices.id in decimal ("urn:coldchain:device:42"). The serial
 * (the CN) alone is not enough: a deleted device's serial can be given to a new device or
 * renamed onto another one, but ids are never reused (AUTOINCREMENT, schema 0006). */
#define CC_AUTH_CERT_URI_PREFIX "urn:coldchain:device:"
/* Digits in a device id: INT64_MAX has 19; a longer or larger value is refused, not cut. */
#define CC_AUTH_DEVICE_ID_DIGITS_MAX 19
/* URIs of one certificate's subjectAltName that are looked at; a certificate with more is
 * refused (the plugin passes up to CC_AUTH_CERT_URIS_MAX + 1 of them). */
#define CC_AUTH_CERT_URIS_MAX 8

/* The device id that a certificate's subjectAltName URIs name: uris[i] is lens[i] bytes (not
 * NUL-terminated, any bytes), i < n. Returns the id (1..INT64_MAX) when exactly one URI starts
 * with CC_AUTH_CERT_URI_PREFIX (compared without case, like the URN scheme and namespace) and
 * the rest is a canonical decimal id: 1..CC_AUTH_DEVICE_ID_DIGITS_MAX digits, no sign, space or
 * leading zero, at most INT64_MAX. Returns 0 (refused) when none does, when two or more do
 * (even with the same id: which one counts would be a guess), when the one that does is
 * malformed, when any URI holds a NUL byte, when n > CC_AUTH_CERT_URIS_MAX, or for NULLs.
 * URIs with another prefix are ignored. */
int64_t cc_auth_cert_device_id(const char *const *uris, const size_t *lens, size_t n);

/* 1 if the device serial may do access (enum cc_auth_access) on topic: publish only to
 * devices/{serial}/readings and devices/{serial}/status; subscribe only under
 * devices/{serial}/ (a filter such as devices/{serial}/# included), and receive only
 * devices/{serial}/errors (never its own publishes: the broker's queues are unlimited, so
 * a device that stopped reading could otherwise fill its memory); unsubscribe anything.
 * 0 for anything else, an unknown access, a NULL, or a serial that is not a device name. */
int cc_auth_topic_allowed(const char *serial, const char *topic, int access);

#endif
