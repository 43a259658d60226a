/* routes.c - apid's routing table: method + path pattern -> handler, flags, roles and
 * resource. */
#include "api.h"

#include <stdio.h>
#include <string.h>

#include "cc_alerts_api.h"
#include "cc_coldcells.h"
#include "cc_devices.h"
#include "cc_locations.h"
#include "cc_users.h"

#define ADMIN CC_ROLE_ADMIN

/* Columns: method, pattern, handler, flags, roles, resource (the api_resource_* handlers'
 * descriptor, common/api/cc_resource.h). */
static const struct api_route routes[] = {
    {"GET", "/health", api_health, API_PUBLIC, 0, NULL},
    {"GET", "/ready", api_ready, API_PUBLIC, 0, NULL},
    {"GET", "/metrics", api_metrics, API_PUBLIC, 0, NULL}, /* loopback: metrics.c */
    {"GET", "/api/openapi.json", api_openapi, API_PUBLIC, 0, NULL},
    /* The live feed: token in ?token=, checked by the handler (ws.c). */
    {"GET", "/api/ws", api_ws_get, API_PUBLIC, 0, NULL},

    {"POST", "/api/auth/login", api_auth_login, API_PUBLIC | API_BODY_JSON | API_KDF, 0, NULL},
    {"POST", "/api/auth/refresh", api_auth_refresh, API_PUBLIC | API_BODY_JSON, 0, NULL},
    {"POST", "/api/auth/logout", api_auth_logout, API_BODY_JSON, 0, NULL},
    {"GET", "/api/auth/me", api_auth_me, 0, 0, NULL},

    {"GET", "/api/users", api_resource_list, 0, ADMIN, &cc_users_resource},
    {"POST", "/api/users", api_resource_create, API_BODY_JSON, ADMIN, &cc_users_resource},
    {"GET", "/api/users/:id", api_resource_get, 0, ADMIN, &cc_users_resource},
    {"PATCH", "/api/users/:id", api_resource_update, API_BODY_JSON, ADMIN, &cc_users_resource},
    {"DELETE", "/api/users/:id", api_resource_delete, 0, ADMIN, &cc_users_resource},
    {"PUT", "/api/users/:technicianId/customers/:customerId", api_users_link, 0, ADMIN, NULL},
    {"DELETE", "/api/users/:technicianId/customers/:customerId", api_users_unlink, 0, ADMIN, NULL},

    {"GET", "/api/locations", api_resource_list, 0, 0, &cc_locations_resource},
    {"POST", "/api/locations", api_resource_create, API_BODY_JSON, 0, &cc_locations_resource},
    {"GET", "/api/locations/:id", api_resource_get, 0, 0, &cc_locations_resource},
    {"PATCH", "/api/locations/:id", api_resource_update, API_BODY_JSON, 0, &cc_locations_resource},
    {"DELETE", "/api/locations/:id", api_resource_delete, 0, 0, &cc_locations_resource},

    {"GET", "/api/coldcells", api_resource_list, 0, 0, &cc_coldcells_resource},
    {"POST", "/api/coldcells", api_resource_create, API_BODY_JSON, 0, &cc_coldcells_resource},
    {"GET", "/api/coldcells/:id", api_resource_get, 0, 0, &cc_coldcells_resource},
    {"PATCH", "/api/coldcells/:id", api_resource_update, API_BODY_JSON, 0, &cc_coldcells_resource},
    {"DELETE", "/api/coldcells/:id", api_resource_delete, 0, 0, &cc_coldcells_resource},

    {"GET", "/api/devices", api_resource_list, 0, 0, &cc_devices_resource},
    {"POST", "/api/devices", api_resource_create, API_BODY_JSON, 0, &cc_devices_resource},
    {"POST", "/api/devices/bulk", api_devices_bulk, 0, 0, NULL}, /* a JSON array: raw body */
    {"GET", "/api/devices/:id", api_resource_get, 0, 0, &cc_devices_resource},
    {"PATCH", "/api/devices/:id", api_resource_update, API_BODY_JSON, 0, &cc_devices_resource},
    {"DELETE", "/api/devices/:id", api_resource_delete, 0, 0, &cc_devices_resource},
    {"POST", "/api/devices/:id/regenerate-key", api_devices_regenerate_key, 0, 0, NULL},

    /* Devices sign with x-device-key, checked by the handler; the body is raw. */
    {"POST", "/api/readings/devices/:serialNumber/readings", api_readings_ingest, API_PUBLIC, 0,
     NULL},
    {"GET", "/api/readings/coldcells/:id/readings", api_readings_query, 0, 0, NULL},
    {"GET", "/api/readings/coldcells/:id/export.csv", api_readings_export_csv, 0, 0, NULL},
    {"GET", "/api/coldcells/:id/latest", api_coldcells_latest, 0, 0, NULL},
    {"GET", "/api/dashboard/customer", api_dashboard_customer, 0, 0, NULL},
    {"GET", "/api/dashboard/technician", api_dashboard_technician, 0,
     CC_ROLE_TECHNICIAN | CC_ROLE_ADMIN, NULL},

    {"GET", "/api/alerts", api_resource_list, 0, 0, &cc_alerts_resource},
    {"GET", "/api/alerts/:id", api_resource_get, 0, 0, &cc_alerts_resource},
    /* An optional raw body {note?}. */
    {"PATCH", "/api/alerts/:id/resolve", api_alerts_resolve, 0, 0, NULL},
    {"PATCH", "/api/alerts/:id/acknowledge", api_alerts_acknowledge, 0, 0, NULL},
    {"GET", "/api/notifications", api_resource_list, 0, 0, &cc_notifications_resource},
    {"PATCH", "/api/notifications/:id/read", api_notifications_read, 0, 0, NULL},

    /* A clustered broker's questions (h_mqtt_auth.c): the shared secret, checked by the
     * handler, instead of a token; 404 while MQTT_AUTH_HTTP_SECRET is unset. */
    {"POST", "/internal/mqtt/emqx/authn", api_mqtt_emqx_authn, API_PUBLIC, 0, NULL},
    {"POST", "/internal/mqtt/emqx/authz", api_mqtt_emqx_authz, API_PUBLIC, 0, NULL},
    {"POST", "/internal/mqtt/gauth/user", api_mqtt_gauth_user, API_PUBLIC, 0, NULL},
    {"POST", "/internal/mqtt/gauth/superuser", api_mqtt_gauth_superuser, API_PUBLIC, 0, NULL},
    {"POST", "/internal/mqtt/gauth/acl", api_mqtt_gauth_acl, API_PUBLIC, 0, NULL},
    {"POST", "/internal/mqtt/vernemq/auth_on_register", api_mqtt_vmq_register, API_PUBLIC, 0, NULL},
    {"POST", "/internal/mqtt/vernemq/auth_on_publish", api_mqtt_vmq_publish, API_PUBLIC, 0, NULL},
    {"POST", "/internal/mqtt/vernemq/auth_on_subscribe", api_mqtt_vmq_subscribe, API_PUBLIC, 0,
     NULL},
};

/* 1 if a parameter of this name must be an id ("id", "customerId", ...). */
static int param_is_id(const char *name, size_t n)
{
    return (n == 2 && memcmp(name, "id", 2) == 0) || (n > 2 && memcmp(name + n - 2, "Id", 2) == 0);
}

/* Matches path against pattern, filling r->param / r->id. 1 on a match. */
static int match(const char *pattern, const char *path, struct api_req *r)
{
    const char *p = pattern, *s = path;
    int np = 0;

    while (*p && *s) {
        if (*p == ':') {
            const char *name = p + 1;
            size_t nlen, vlen;
            const char *vend = strchr(s, '/');

            while (*p && *p != '/')
                p++;
            nlen = (size_t)(p - name);
            if (vend == NULL)
                vend = s + strlen(s);
            vlen = (size_t)(vend - s);
            if (vlen == 0 || vlen >= API_PARAM_MAX || np >= API_MAX_PARAMS)
                return 0;
            memcpy(r->param[np], s, vlen);
            r->param[np][vlen] = '\0';
            r->id[np] = 0;
            if (!cc_http_parse_id(r->param[np], &r->id[np]) && param_is_id(name, nlen))
                return 0;
            np++;
            s = vend;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    return *p == '\0' && *s == '\0';
}

int api_route_find(struct api_req *r, char *allow, size_t allowlen)
{
    size_t n = sizeof routes / sizeof routes[0];
    size_t used = 0;
    int path_known = 0;

    allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!match(routes[i].pattern, r->path, r))
            continue;
        if (strcmp(routes[i].method, r->method) == 0) {
            r->route = &routes[i];
            return API_ROUTE_FOUND;
        }
        path_known = 1;
        if (strstr(allow, routes[i].method) == NULL) {
            int w =
                snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "", routes[i].method);

            if (w > 0 && (size_t)w < allowlen - used)
                used += (size_t)w;
        }
    }
    if (!path_known)
        return API_ROUTE_NO_PATH;
    return API_ROUTE_NO_METHOD;
}

size_t api_route_count(void)
{
    return sizeof routes / sizeof routes[0];
}

const struct api_route *api_route_at(size_t i)
{
    return i < sizeof routes / sizeof routes[0] ? &routes[i] : NULL;
}

int api_route_unlimited(const char *path)
{
    return strcmp(path, "/health") == 0 || strcmp(path, "/ready") == 0 ||
           strcmp(path, "/metrics") == 0;
}

int api_route_is_auth(const char *path)
{
    return strncmp(path, "/api/auth/", 10) == 0 && strcmp(path, "/api/auth/me") != 0;
}

int api_route_is_internal(const char *path)
{
    return strncmp(path, "/internal/", 10) == 0;
}

/* 1 if a route names a resource exactly when its handler is a resource verb (which reads
 * r->route->res and would crash without one). */
static int route_consistent(const struct api_route *rt)
{
    int verb = rt->fn == api_resource_list || rt->fn == api_resource_get ||
               rt->fn == api_resource_create || rt->fn == api_resource_update ||
               rt->fn == api_resource_delete;

    return verb == (rt->res != NULL);
}

int api_routes_print(FILE *out)
{
    int bad = 0;

    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        fprintf(out, "%s %s\n", routes[i].method, routes[i].pattern);
        if (!route_consistent(&routes[i])) {
            fprintf(stderr, "apid: route %s %s: resource handler and resource disagree\n",
                    routes[i].method, routes[i].pattern);
            bad++;
        }
    }
    return bad;
}
