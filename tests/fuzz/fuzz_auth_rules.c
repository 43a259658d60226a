/* fuzz_auth_rules.c - the broker plugin's decisions about a device (broker-config/
 * cc_auth_rules.c): which usernames name a device, which client id a device may use
 * (issue 12 item 3: a device took over ingestd's session), which topics it may touch.
 * Input: one access byte, then serial, a 0x00 byte, and the client id / topic.
 * Invariants (SPEC §3): a device name is 1..CC_AUTH_SERIAL_MAX bytes of [A-Za-z0-9._-],
 * a valid provisioning serial, never with the operators' prefix; a device may use only
 * its own serial as client id; it publishes only to devices/{serial}/readings and
 * devices/{serial}/status and reads or subscribes only under devices/{serial}/. */
#include <strings.h>

#include "cc_auth_rules.h"
#include "cc_provision.h"
#include "fuzz.h"

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
        } else if (acc == CC_AUTH_READ || acc == CC_AUTH_SUBSCRIBE) {
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
