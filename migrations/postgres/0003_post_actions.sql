-- Post-campaign triggers (`/on`): an action applied to a recipient's contact on an event.
CREATE TABLE campaign_actions (
    id          BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    event       TEXT NOT NULL,     -- delivered | read | replied | clicked:<button> | failed
    action      TEXT NOT NULL,     -- label+=x | label-=x | attr.KEY=value | optout
    created_at  BIGINT NOT NULL
);
CREATE INDEX campaign_actions_by_campaign ON campaign_actions(campaign_id, event);
