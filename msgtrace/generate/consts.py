"""Codes shared by the model, the writers and the truth (small ints keep the tables compact)."""

US = 1_000_000
INBOUND, OUTBOUND, LOCAL, REJECT, DSN = 0, 1, 2, 3, 4
# attempt results
SENT, DEFERRED, BOUNCED, EXPIRED = 0, 1, 2, 3
# delivery modes
SMTP, LMTP, VIRTUAL, LOCALD = 0, 1, 2, 3
# outcome plans per recipient
P_SENT, P_BOUNCE, P_DEFER_SENT, P_DEFER_BOUNCE, P_STUCK = 0, 1, 2, 3, 4
# reject reasons (index into each writer's table); the first two name a blocklist
REJ_BLOCKLIST, REJ_DBL, REJ_UNKNOWN, REJ_RELAY = 0, 1, 2, 3
# deferral / bounce reasons
R_GREYLIST, R_TIMEOUT, R_QUOTA = 0, 1, 2
R_UNKNOWN, R_SPAM = 0, 1
