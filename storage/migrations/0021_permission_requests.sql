-- Meta limits call permission requests from a business to one person (1 in
-- 24 h, 2 in 7 days, both reset by a connected call): each request sent is kept
-- by the person's WhatsApp number, so the policy gate can count them, and so is
-- the bound Meta itself gave (its call_permissions answer) for the next one.
CREATE TABLE wa_permission_requests (
    id         INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL,
    phone      TEXT NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX wa_permission_requests_phone ON wa_permission_requests (phone, at);

CREATE TABLE wa_permission_limits (
    phone           TEXT PRIMARY KEY,
    next_request_at INTEGER
);
