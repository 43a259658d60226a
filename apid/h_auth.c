/* h_auth.c - POST /api/auth/login, /refresh, /logout and GET /api/auth/me. */
#include "api.h"

#include "cc_rc.h"
#include "cc_users.h"

int api_auth_login(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_auth_login(r->st, &r->app->auth, r->body, &out, &err);

    if (rc == CC_OK) {
        cJSON *user = cJSON_GetObjectItemCaseSensitive(out, "user");
        cJSON *id = cJSON_GetObjectItemCaseSensitive(user, "id");

        if (cJSON_IsNumber(id))
            r->who.user_id = (int64_t)id->valuedouble; /* for the request log line */
    }
    return api_answer(r, rc, err, out, 200);
}

int api_auth_refresh(struct api_req *r)
{
    cJSON *out = NULL, *err = NULL;
    int rc = cc_auth_refresh(r->st, &r->app->auth, r->body, &out, &err);

    return api_answer(r, rc, err, out, 200);
}

int api_auth_logout(struct api_req *r)
{
    cJSON *err = NULL;
    int rc = cc_auth_logout(r->st, &r->app->auth, &r->who, r->body, &err);

    return api_answer(r, rc, err, NULL, 204);
}

int api_auth_me(struct api_req *r)
{
    cJSON *out = NULL;
    int rc = cc_users_get(r->st, &r->who, r->who.user_id, &out);

    /* The user behind a valid token vanished between the check and now. */
    if (rc == CC_ERR_NOT_FOUND)
        rc = CC_ERR_UNAUTHORIZED;
    return api_answer(r, rc, NULL, out, 200);
}
