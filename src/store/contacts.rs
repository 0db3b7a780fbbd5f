//! Contacts, labels, attributes, consent history and the service window.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

use super::{
    opt_time, placeholders, Consent, ConsentEvent, Contact, ContactUpdate, Result, Store,
    StoreError,
};
use crate::clock::to_ms;
use crate::domain::audience::AudienceExpr;
use crate::domain::consent::{ConsentChange, ConsentSource};
use crate::domain::{Address, AttrKey, Label, Lang};

const CONTACT_COLUMNS: &str = "id, address, name, lang, tz, consent, consent_at, last_inbound_at, \
                               marketing_stopped, unreachable";

pub(super) fn contact_from_row(row: &AnyRow) -> Result<Contact> {
    Ok(Contact {
        id: row.try_get("id")?,
        address: Address::from_canonical(row.try_get::<String, _>("address")?),
        name: row.try_get("name")?,
        lang: row
            .try_get::<Option<String>, _>("lang")?
            .map(Lang::from_canonical),
        tz: row.try_get("tz")?,
        consent: Consent::from_db(&row.try_get::<String, _>("consent")?),
        consent_at: opt_time(row, "consent_at")?,
        last_inbound_at: opt_time(row, "last_inbound_at")?,
        marketing_stopped: row.try_get::<i64, _>("marketing_stopped")? != 0,
        unreachable: row.try_get("unreachable")?,
        labels: Vec::new(),
        attrs: BTreeMap::new(),
    })
}

impl Store {
    pub async fn find_contact(&self, address: &Address) -> Result<Option<Contact>> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE address = $1");
        let row = sqlx::query(&sql)
            .bind(address.as_str())
            .fetch_optional(&self.pool)
            .await?;
        self.with_details(row).await
    }

    pub async fn contact_by_id(&self, id: i64) -> Result<Option<Contact>> {
        let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        self.with_details(row).await
    }

    async fn with_details(&self, row: Option<AnyRow>) -> Result<Option<Contact>> {
        let Some(row) = row else { return Ok(None) };
        let mut contact = contact_from_row(&row)?;
        self.load_details(std::slice::from_mut(&mut contact))
            .await?;
        Ok(Some(contact))
    }

    /// Fills labels and attributes of several contacts with two queries.
    pub(super) async fn load_details(&self, contacts: &mut [Contact]) -> Result<()> {
        if contacts.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = contacts.iter().map(|c| c.id).collect();
        let list = placeholders(1, ids.len());
        let mut labels: HashMap<i64, Vec<Label>> = HashMap::new();
        let sql = format!(
            "SELECT contact_id, label FROM contact_labels WHERE contact_id IN ({list}) ORDER BY label"
        );
        let mut q = sqlx::query(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&self.pool).await? {
            labels
                .entry(row.try_get("contact_id")?)
                .or_default()
                .push(Label::from_canonical(row.try_get::<String, _>("label")?));
        }
        let mut attrs: HashMap<i64, BTreeMap<AttrKey, String>> = HashMap::new();
        let sql = format!(
            "SELECT contact_id, key, value FROM contact_attrs WHERE contact_id IN ({list})"
        );
        let mut q = sqlx::query(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&self.pool).await? {
            attrs.entry(row.try_get("contact_id")?).or_default().insert(
                AttrKey::from_canonical(row.try_get::<String, _>("key")?),
                row.try_get("value")?,
            );
        }
        for c in contacts.iter_mut() {
            c.labels = labels.remove(&c.id).unwrap_or_default();
            c.attrs = attrs.remove(&c.id).unwrap_or_default();
        }
        Ok(())
    }

    /// Returns the contact at `address`, creating it (consent unknown) if new. A profile name
    /// fills an empty name but never replaces one an admin set.
    pub async fn ensure_contact(
        &self,
        address: &Address,
        name: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Contact, bool)> {
        let inserted = sqlx::query(
            "INSERT INTO contacts (address, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (address) DO NOTHING",
        )
        .bind(address.as_str())
        .bind(name)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0;
        if !inserted {
            if let Some(name) = name {
                sqlx::query("UPDATE contacts SET name = $1 WHERE address = $2 AND name IS NULL")
                    .bind(name)
                    .bind(address.as_str())
                    .execute(&self.pool)
                    .await?;
            }
        }
        let contact = self
            .find_contact(address)
            .await?
            .ok_or_else(|| super::StoreError::Invalid(format!("contact {address} vanished")))?;
        Ok((contact, inserted))
    }

    /// `/contact add`: creates the contact if new, writes the fields given and, with `optin`,
    /// opts it in (an admin's word, so also after an opt-out), all in one transaction: a crash
    /// or a failed write leaves the contact as it was. Returns the contact and whether it is new.
    pub async fn add_contact(
        &self,
        address: &Address,
        update: &ContactUpdate,
        optin: bool,
        now: DateTime<Utc>,
    ) -> Result<(Contact, bool)> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let created = insert_missing(&mut tx, std::slice::from_ref(address), now).await? > 0;
        let id: i64 = sqlx::query_scalar("SELECT id FROM contacts WHERE address = $1")
            .bind(address.as_str())
            .fetch_one(&mut *tx)
            .await?;
        write_update(&mut tx, id, update).await?;
        if optin {
            let consent: String = sqlx::query_scalar("SELECT consent FROM contacts WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if Consent::from_db(&consent) != Consent::OptedIn {
                self.write_consent(&mut tx, id, true, ConsentSource::Admin, None, now)
                    .await?;
            }
        }
        tx.commit().await?;
        let contact = self
            .find_contact(address)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("contact {address} vanished")))?;
        Ok((contact, created))
    }

    /// Writes the fields an admin or an import gave; labels and attributes are added to.
    pub async fn update_contact(&self, contact_id: i64, update: &ContactUpdate) -> Result<()> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        write_update(&mut tx, contact_id, update).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds or removes a label; returns how many contacts changed.
    pub async fn set_label(
        &self,
        label: &Label,
        contact_ids: &[i64],
        present: bool,
    ) -> Result<u64> {
        // One transaction: `/label add vip a b c` labels all three or none.
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let mut changed = 0;
        for id in contact_ids {
            let sql = if present {
                "INSERT INTO contact_labels (contact_id, label) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM contact_labels WHERE contact_id = $1 AND label = $2"
            };
            changed += sqlx::query(sql)
                .bind(*id)
                .bind(label.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Appends a consent row and sets the contact's current consent. An opt-out also takes the
    /// contact off every campaign not yet sent to them, including one sending right now: rows
    /// already claimed by a dispatcher are caught too, since marking `sending` requires `claimed`.
    /// Returns how many pending sends were dropped.
    pub async fn record_consent(
        &self,
        contact_id: i64,
        opt_in: bool,
        source: ConsentSource,
        keyword: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<u64> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let dropped = self
            .write_consent(&mut tx, contact_id, opt_in, source, keyword, at)
            .await?;
        tx.commit().await?;
        Ok(dropped)
    }

    pub async fn consent_history(&self, contact_id: i64) -> Result<Vec<ConsentEvent>> {
        let rows = sqlx::query(
            "SELECT kind, source, keyword, at FROM consent_events WHERE contact_id = $1 ORDER BY id",
        )
        .bind(contact_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                let source: String = r.try_get("source")?;
                Ok(ConsentEvent {
                    kind: ConsentChange::from_stored(&kind).ok_or_else(|| {
                        StoreError::Invalid(format!("unknown consent change {kind:?}"))
                    })?,
                    source: ConsentSource::from_stored(&source).ok_or_else(|| {
                        StoreError::Invalid(format!("unknown consent source {source:?}"))
                    })?,
                    keyword: r.try_get("keyword")?,
                    at: crate::clock::from_ms(r.try_get("at")?),
                })
            })
            .collect()
    }

    /// Opens (or extends) the service window. A late, out-of-order message never moves it back.
    pub async fn touch_inbound(&self, contact_id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE contacts SET last_inbound_at = $1 \
             WHERE id = $2 AND (last_inbound_at IS NULL OR last_inbound_at < $1)",
        )
        .bind(to_ms(at))
        .bind(contact_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remembers an inbound message id; false if it was seen before (a redelivery).
    pub async fn first_sighting(&self, provider_id: &str, at: DateTime<Utc>) -> Result<bool> {
        Ok(sqlx::query(
            "INSERT INTO inbound_seen (provider_id, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(provider_id)
        .bind(to_ms(at))
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// Undoes [`Store::first_sighting`] for a message whose processing failed.
    pub async fn forget_sighting(&self, provider_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM inbound_seen WHERE provider_id = $1")
            .bind(provider_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_marketing_stopped(&self, contact_id: i64, stopped: bool) -> Result<()> {
        sqlx::query("UPDATE contacts SET marketing_stopped = $1 WHERE id = $2")
            .bind(i64::from(stopped))
            .bind(contact_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_unreachable(&self, contact_id: i64, reason: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE contacts SET unreachable = $1 WHERE id = $2")
            .bind(reason)
            .bind(contact_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn count_contacts(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM contacts")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// How many contacts an audience selects now.
    pub async fn count_audience(&self, audience: &AudienceExpr) -> Result<i64> {
        let (condition, binds) = super::audience::condition(audience, 1);
        let sql = format!("SELECT COUNT(*) FROM contacts c WHERE {condition}");
        let mut q = sqlx::query_scalar::<_, i64>(&sql);
        for b in &binds {
            q = q.bind(b.as_str());
        }
        Ok(q.fetch_one(&self.pool).await?)
    }

    /// The contacts an audience selects, with details.
    pub async fn audience_contacts(&self, audience: &AudienceExpr) -> Result<Vec<Contact>> {
        let (condition, binds) = super::audience::condition(audience, 1);
        let cols = CONTACT_COLUMNS
            .split(", ")
            .map(|c| format!("c.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {cols} FROM contacts c WHERE {condition} ORDER BY c.id");
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut contacts = rows
            .iter()
            .map(contact_from_row)
            .collect::<Result<Vec<_>>>()?;
        for chunk in contacts.chunks_mut(500) {
            self.load_details(chunk).await?;
        }
        Ok(contacts)
    }
}

/// Creates the contacts among `addresses` that do not exist yet; returns how many were new.
pub(super) async fn insert_missing(
    conn: &mut AnyConnection,
    addresses: &[Address],
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut created = 0;
    for address in addresses {
        created += sqlx::query(
            "INSERT INTO contacts (address, created_at) VALUES ($1, $2) \
             ON CONFLICT (address) DO NOTHING",
        )
        .bind(address.as_str())
        .bind(to_ms(now))
        .execute(&mut *conn)
        .await?
        .rows_affected() as usize;
    }
    Ok(created)
}

/// The fields of `update` written onto one contact; labels and attributes are added to.
async fn write_update(
    conn: &mut AnyConnection,
    contact_id: i64,
    update: &ContactUpdate,
) -> Result<()> {
    sqlx::query(
        "UPDATE contacts SET name = COALESCE($1, name), lang = COALESCE($2, lang), \
         tz = COALESCE($3, tz) WHERE id = $4",
    )
    .bind(update.name.as_deref())
    .bind(update.lang.as_ref().map(Lang::as_str))
    .bind(update.tz.as_deref())
    .bind(contact_id)
    .execute(&mut *conn)
    .await?;
    for label in &update.labels {
        sqlx::query(
            "INSERT INTO contact_labels (contact_id, label) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(contact_id)
        .bind(label.as_str())
        .execute(&mut *conn)
        .await?;
    }
    for (key, value) in &update.attrs {
        sqlx::query(
            "INSERT INTO contact_attrs (contact_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (contact_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(contact_id)
        .bind(key.as_str())
        .bind(value.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    /// A consent history row and the contact's current consent (see [`Store::record_consent`]).
    async fn write_consent(
        &self,
        conn: &mut AnyConnection,
        contact_id: i64,
        opt_in: bool,
        source: ConsentSource,
        keyword: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<u64> {
        sqlx::query(
            "INSERT INTO consent_events (contact_id, kind, source, keyword, at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(contact_id)
        .bind(ConsentChange::new(opt_in).as_str())
        .bind(source.as_str())
        .bind(keyword)
        .bind(to_ms(at))
        .execute(&mut *conn)
        .await?;
        let consent = if opt_in {
            Consent::OptedIn
        } else {
            Consent::OptedOut
        };
        sqlx::query("UPDATE contacts SET consent = $1, consent_at = $2 WHERE id = $3")
            .bind(consent.as_str())
            .bind(to_ms(at))
            .bind(contact_id)
            .execute(&mut *conn)
            .await?;
        let dropped = if opt_in {
            0
        } else {
            // Pending rows can only be in campaigns still under way (a completed campaign has
            // none; cancelling skips them): probed campaign by campaign in the unique pair, as
            // `recipients_by_contact` holds sent rows only.
            sqlx::query(&format!(
                "UPDATE recipients SET status = 'skipped', reason = 'opted_out' \
                 WHERE contact_id = $1 AND status IN ('queued', 'claimed') AND {}",
                self.in_ids_of(
                    "campaign_id",
                    "SELECT id FROM campaigns WHERE status NOT IN ('completed', 'cancelled')"
                )
            ))
            .bind(contact_id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        };
        Ok(dropped)
    }
}
