/*
 * store: the parts of store.h every backend shares: message state names
 * (the spelling operators see and the database keeps) and the helpers that
 * free what a store_message or store_receipt owns.
 */
#include "store.h"
#include "err.h"

#include <string.h>

static const char *const state_names[MSG_STATE_COUNT] = {
	[MSG_QUEUED] = "queued",
	[MSG_SENDING] = "sending",
	[MSG_DELIVERED] = "delivered",
	[MSG_FAILED] = "failed",
	[MSG_HELD] = "held",
	[MSG_SUPERSEDED] = "superseded",
	[MSG_CANCELLED] = "cancelled",
};

const char *store_state_name(enum msg_state s)
{
	if ((int)s < 0 || s >= MSG_STATE_COUNT)
		return "unknown";
	return state_names[s];
}

int store_state_parse(const char *name, enum msg_state *out)
{
	for (int i = 0; i < MSG_STATE_COUNT; i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum msg_state)i;
			return 0;
		}
	}
	return gw_error_set(GW_EINVALID,
			    "unknown message state '%s' (use queued, sending, delivered, failed, "
			    "held, superseded or cancelled)",
			    name);
}

void store_message_clear(struct store_message *m)
{
	if (m)
		gw_buf_free(&m->signed_bytes);
}

void store_receipt_clear(struct store_receipt *r)
{
	if (r)
		gw_buf_free(&r->bytes);
}
