/* fuzz_auth_rules.c - the broker plugin's decisions about a device (broker-config/
 * cc_auth_rules.c): which usernames name a device, which client id a device may use
 * (issue 12 item 3: a device took over ingestd's session), which topics it may touch.
 * Input: one selector byte; below 0x80: the access (low three bits), then serial, a 0x00
 * byte, and the client id / topic; 0x80-0xbf: URIs of a device certificate's
 * subjectAltName, each as a length byte and that many bytes; 0xc0 and up: a username, a
 * 0x00 byte, and a certificate's common name (any bytes).
 * Invariants (SPEC §3): a device name is 1..CC_AUTH_SERIAL_MAX bytes of [A-Za-z0-9._-],
 * a valid provisioning serial, never with the operators' prefix; a device may use only
 * its own serial as client id; it publishes only to devices/{serial}/readings and
 * devices/{serial}/status, subscribes only under devices/{serial}/ and receives only
 * devices/{serial}/errors; a certificate names a device id exactly as an independent
 * reading of the header's rule does, and its CN logs in only as the same device name. */
#include <strings.h>

#include "cc_auth_rules.h"
#include "cc_provision.h"
#include "fuzz.h"

/* The reference for cc_auth_cert_device_id, written from its header comment. */
static int64_t ref_cert_id(const char *const *uris, const size_t *lens, size_t n)
{
    const size_t plen = strlen(CC_AUTH_CERT_URI_PREFIX);
    int64_t id = 0;
    int found = 0, bad = 0;

    if (n > CC_AUTH_CERT_URIS_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const char *u = uris[i];
        size_t k, nd;
        uint64_t v = 0;

        if (memchr(u, '\0', lens[i]) != NULL)
            return 0;
        if (lens[i] < plen || strncasecmp(u, CC_AUTH_CERT_URI_PREFIX, plen) != 0)
            continue;
        found++;
        nd = lens[i] - plen;
        if (nd < 1 || nd > CC_AUTH_DEVICE_ID_DIGITS_MAX || u[plen] == '0')
            bad = 1;
        for (k = plen; !bad && k < lens[i]; k++) {
            if (u[k] < '0' || u[k] > '9' || v > ((uint64_t)INT64_MAX - (uint64_t)(u[k] - '0')) / 10)
                bad = 1;
            else
                v = v * 10 + (uint64_t)(u[k] - '0');
        }
        id = (int64_t)v;
    }
    return found == 1 && !bad ? id : 0;
}

static void cert_uris(const uint8_t *d, size_t n)
{
    const char *uris[CC_AUTH_CERT_URIS_MAX + 4];
    size_t lens[CC_AUTH_CERT_URIS_MAX + 4], k = 0;
    char *copies[CC_AUTH_CERT_URIS_MAX + 4];
    int64_t got;

    while (n > 0 && k < CC_AUTH_CERT_URIS_MAX + 4) {
        size_t len = d[0] < n - 1 ? d[0] : n - 1;

        copies[k] = fuzz_dup(d + 1, len); /* exact length: not NUL-terminated */
        uris[k] = copies[k];
        lens[k++] = len;
        d += 1 + len;
        n -= 1 + len;
    }
    got = cc_auth_cert_device_id(uris, lens, k);
    FUZZ_CHECK(got >= 0);
    FUZZ_CHECK(got == ref_cert_id(uris, lens, k));
    for (size_t i = 0; i < k; i++)
        free(copies[i]);
}

static void cert_name(const uint8_t *d, size_t n)
{
    const uint8_t *cn;
    size_t cnlen;
    char *user = fuzz_split(d, n, &cn, &cnlen);
    char *cncopy = fuzz_dup(cn, cnlen);
    int ok = cc_auth_cert_name_allowed(cncopy, cnlen, user);

    FUZZ_CHECK(ok == 0 || ok == 1);
    FUZZ_CHECK(ok == (cc_auth_is_device_name(user) && strlen(user) == cnlen &&
                      memcmp(user, cncopy, cnlen) == 0));
    free(cncopy);
    free(user);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int access[] = {
        CC_AUTH_READ, CC_AUTH_WRITE, CC_AUTH_SUBSCRIBE, CC_AUTH_UNSUBSCRIBE, 0, 3, 16, -1};
    const uint8_t *rest;
    size_t rn;
    char *serial, *other, prefix[CC_AUTH_SERIAL_MAX + 16];
    int acc, dev, reserved, allowed;

    if (size < 1)
        return 0;
    if (data[0] >= 0xc0) {
        cert_name(data + 1, size - 1);
        return 0;
    }
    if (data[0] >= 0x80) {
        cert_uris(data + 1, size - 1);
        return 0;
    }
    acc = access[data[0] & 7];
    serial = fuzz_split(data + 1, size - 1, &rest, &rn);
    other = fuzz_cstr(rest, rn);

    reserved = cc_auth_name_reserved(serial);
    FUZZ_CHECK(reserved == (strncasecmp(serial, CC_AUTH_OPERATOR_PREFIX,
                                        strlen(CC_AUTH_OPERATOR_PREFIX)) == 0));
    FUZZ_CHECK(cc_auth_name_reserved(other) ==
               (strncasecmp(other, CC_AUTH_OPERATOR_PREFIX, strlen(CC_AUTH_OPERATOR_PREFIX)) == 0));
    dev = cc_auth_is_device_name(serial);
    FUZZ_CHECK(dev == 0 || dev == 1);
    if (dev) {
        FUZZ_CHECK(!reserved);
        FUZZ_CHECK(strlen(serial) >= 1 && strlen(serial) <= CC_AUTH_SERIAL_MAX);
        FUZZ_CHECK(strspn(serial, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789._-") == strlen(serial));
        FUZZ_CHECK(cc_provision_serial_valid(serial));
    } else {
        FUZZ_CHECK(!cc_provision_serial_valid(serial) || reserved);
    }

    allowed = cc_auth_client_id_allowed(serial, other);
    FUZZ_CHECK(allowed == (dev && strcmp(serial, other) == 0));
    FUZZ_CHECK(!cc_auth_client_id_allowed(serial, "coldchain-ingestd"));

    allowed = cc_auth_topic_allowed(serial, other, acc);
    FUZZ_CHECK(allowed == 0 || allowed == 1);
    if (allowed) {
        FUZZ_CHECK(dev);
        snprintf(prefix, sizeof prefix, "devices/%s/", serial);
        if (acc == CC_AUTH_WRITE) {
            FUZZ_CHECK(strncmp(other, prefix, strlen(prefix)) == 0);
            FUZZ_CHECK(strcmp(other + strlen(prefix), "readings") == 0 ||
                       strcmp(other + strlen(prefix), "status") == 0);
        } else if (acc == CC_AUTH_READ) {
            FUZZ_CHECK(strncmp(other, prefix, strlen(prefix)) == 0);
            FUZZ_CHECK(strcmp(other + strlen(prefix), "errors") == 0);
        } else if (acc == CC_AUTH_SUBSCRIBE) {
            FUZZ_CHECK(strncmp(other, prefix, strlen(prefix)) == 0);
        } else {
            FUZZ_CHECK(acc == CC_AUTH_UNSUBSCRIBE);
        }
    } else if (dev) {
        /* ... and what it needs is never refused. */
        snprintf(prefix, sizeof prefix, "devices/%s/readings", serial);
        FUZZ_CHECK(acc != CC_AUTH_WRITE || strcmp(other, prefix) != 0);
    }
    free(serial);
    free(other);
    return 0;
}
