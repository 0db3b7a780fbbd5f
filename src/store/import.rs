//! A CSV import written as one transaction: a crash or a failed statement leaves the contacts as
//! they were. Rows go in chunks, each a handful of statements whose rows travel as one JSON
//! array parameter (a statement per contact made 50,000 rows take a minute).
//!
//! Each record is compared with what is stored first, so importing the same file again writes
//! nothing and reports every row unchanged; consent history only grows when consent changes.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};

use super::{json_list, Consent, Result, Store};
use crate::clock::to_ms;
use crate::domain::consent::{ConsentChange, ConsentSource};
use crate::domain::csv_import::ContactRecord;
use crate::domain::Lang;

/// Records per round of statements: large enough that statement overhead vanishes, small enough
/// that one JSON parameter stays a few hundred kilobytes.
const CHUNK: usize = 2000;

/// What an import did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Added,
    Updated,
    /// Everything in the row was already stored.
    Unchanged,
    /// The row says opted in, but the contact opted out: only they can opt back in (SPEC §2),
    /// so nothing of the row is written.
    StaysOptedOut,
}

/// A stored contact as far as an import compares it.
#[derive(Debug, Default)]
struct Stored {
    id: i64,
    name: Option<String>,
    lang: Option<String>,
    tz: Option<String>,
    consent: Option<Consent>,
    labels: HashSet<String>,
    attrs: HashMap<String, String>,
}

/// The writes one chunk needs, each a JSON array of rows.
#[derive(Default)]
struct Writes {
    fields: Vec<Value>,
    labels: Vec<Value>,
    attrs: Vec<Value>,
    /// Consent history rows (`[id, kind]`), and the consent they set on stored contacts.
    events: Vec<Value>,
    consent: Vec<Value>,
    opted_out: Vec<i64>,
}

impl Store {
    /// Writes `records` (no two with the same address) in one transaction and says what became
    /// of each, in order. Labels and attributes are added to; a blank value leaves a field as
    /// it is. Consent from the file records a history row with source `import` when it changes
    /// the contact's consent, except that an opted-out contact is never opted back in.
    pub async fn import_contacts(
        &self,
        records: &[ContactRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<ImportOutcome>> {
        let mut tx = self.pool.begin_with(self.begin_write()).await?;
        let mut outcomes = Vec::with_capacity(records.len());
        for chunk in records.chunks(CHUNK) {
            outcomes.extend(self.import_chunk(&mut tx, chunk, to_ms(now)).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn import_chunk(
        &self,
        conn: &mut AnyConnection,
        records: &[ContactRecord],
        now_ms: i64,
    ) -> Result<Vec<ImportOutcome>> {
        let addresses: Vec<&str> = records.iter().map(|r| r.address.as_str()).collect();
        let mut stored = self.stored_contacts(conn, &addresses).await?;
        let new: Vec<&ContactRecord> = records
            .iter()
            .filter(|r| !stored.contains_key(r.address.as_str()))
            .collect();
        let added = self.insert_new(conn, &new, now_ms).await?;
        let mut writes = Writes::default();
        for record in &new {
            let Some(id) = added.get(record.address.as_str()).copied() else {
                continue;
            };
            // The insert wrote its fields and consent; only the consent's history row is left.
            if let Some(opt_in) = record.consent {
                writes.events.push(json!([id, consent_kind(opt_in)]));
            }
            stored.insert(
                record.address.to_string(),
                Stored {
                    id,
                    name: record.name.clone(),
                    lang: record.lang.as_ref().map(|l| l.as_str().to_string()),
                    tz: record.tz.clone(),
                    consent: record.consent.map(consent_of),
                    ..Stored::default()
                },
            );
        }
        // On PostgreSQL another connection may have created one of them meanwhile: it is then
        // an existing contact like the others (SQLite's write lock rules this out).
        let raced: Vec<&str> = new
            .iter()
            .map(|r| r.address.as_str())
            .filter(|a| !stored.contains_key(*a))
            .collect();
        stored.extend(self.stored_contacts(conn, &raced).await?);

        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let Some(have) = stored.get(record.address.as_str()) else {
                return Err(super::StoreError::Invalid(format!(
                    "contact {} vanished during an import",
                    record.address
                )));
            };
            let changed = match plan(record, have, &mut writes) {
                Some(changed) => changed,
                None => {
                    outcomes.push(ImportOutcome::StaysOptedOut);
                    continue;
                }
            };
            outcomes.push(if added.contains_key(record.address.as_str()) {
                ImportOutcome::Added
            } else if changed {
                ImportOutcome::Updated
            } else {
                ImportOutcome::Unchanged
            });
        }
        self.write(conn, writes, now_ms).await?;
        Ok(outcomes)
    }

    /// The stored contacts among `addresses`, with labels and attributes, locked until the
    /// transaction ends on PostgreSQL so a `STOP` arriving meanwhile waits for the import
    /// instead of being overwritten by it.
    async fn stored_contacts(
        &self,
        conn: &mut AnyConnection,
        addresses: &[&str],
    ) -> Result<HashMap<String, Stored>> {
        let mut stored = HashMap::new();
        if addresses.is_empty() {
            return Ok(stored);
        }
        let sql = format!(
            "SELECT id, address, name, lang, tz, consent FROM contacts WHERE {}{}",
            self.in_json_texts("address", 1),
            self.lock_rows()
        );
        let rows = sqlx::query(&sql)
            .bind(serde_json::to_string(addresses).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&mut *conn)
            .await?;
        let mut by_id: HashMap<i64, String> = HashMap::new();
        for row in &rows {
            let address: String = row.try_get("address")?;
            let id: i64 = row.try_get("id")?;
            by_id.insert(id, address.clone());
            stored.insert(
                address,
                Stored {
                    id,
                    name: row.try_get("name")?,
                    lang: row.try_get("lang")?,
                    tz: row.try_get("tz")?,
                    consent: Some(Consent::from_db(&row.try_get::<String, _>("consent")?)),
                    labels: HashSet::new(),
                    attrs: HashMap::new(),
                },
            );
        }
        if by_id.is_empty() {
            return Ok(stored);
        }
        let ids = json_list(&by_id.keys().copied().collect::<Vec<_>>());
        let sql = format!(
            "SELECT contact_id, label FROM contact_labels WHERE {}",
            self.in_json_ids("contact_id", 1)
        );
        for row in sqlx::query(&sql).bind(&ids).fetch_all(&mut *conn).await? {
            let contact = by_id.get(&row.try_get::<i64, _>("contact_id")?);
            if let Some(s) = contact.and_then(|a| stored.get_mut(a)) {
                s.labels.insert(row.try_get("label")?);
            }
        }
        let sql = format!(
            "SELECT contact_id, key, value FROM contact_attrs WHERE {}",
            self.in_json_ids("contact_id", 1)
        );
        for row in sqlx::query(&sql).bind(&ids).fetch_all(&mut *conn).await? {
            let contact = by_id.get(&row.try_get::<i64, _>("contact_id")?);
            if let Some(s) = contact.and_then(|a| stored.get_mut(a)) {
                s.attrs.insert(row.try_get("key")?, row.try_get("value")?);
            }
        }
        Ok(stored)
    }

    /// Creates the contacts of `records` with their fields and consent (labels and attributes
    /// follow with the other writes); returns the ones this statement created.
    async fn insert_new(
        &self,
        conn: &mut AnyConnection,
        records: &[&ContactRecord],
        now_ms: i64,
    ) -> Result<HashMap<String, i64>> {
        let mut added = HashMap::new();
        if records.is_empty() {
            return Ok(added);
        }
        let rows: Vec<Value> = records
            .iter()
            .map(|r| {
                let consent = r.consent.map_or(Consent::Unknown, consent_of);
                json!([
                    r.address.as_str(),
                    r.name,
                    r.lang.as_ref().map(Lang::as_str),
                    r.tz,
                    consent.as_str(),
                    r.consent.map(|_| now_ms),
                ])
            })
            .collect();
        let v = self.json_rows(
            1,
            &[
                ("address", "text"),
                ("name", "text"),
                ("lang", "text"),
                ("tz", "text"),
                ("consent", "text"),
                ("consent_at", "bigint"),
            ],
        );
        // `WHERE true` keeps SQLite from reading `ON CONFLICT` as a join's `ON`.
        let sql = format!(
            "INSERT INTO contacts (address, name, lang, tz, consent, consent_at, created_at) \
             SELECT v.address, v.name, v.lang, v.tz, v.consent, v.consent_at, $2 FROM {v} \
             WHERE true ON CONFLICT (address) DO NOTHING RETURNING id, address"
        );
        for row in sqlx::query(&sql)
            .bind(Value::Array(rows).to_string())
            .bind(now_ms)
            .fetch_all(&mut *conn)
            .await?
        {
            added.insert(row.try_get("address")?, row.try_get("id")?);
        }
        Ok(added)
    }

    async fn write(&self, conn: &mut AnyConnection, w: Writes, now_ms: i64) -> Result<()> {
        if !w.fields.is_empty() {
            let v = self.json_rows(
                1,
                &[
                    ("id", "bigint"),
                    ("name", "text"),
                    ("lang", "text"),
                    ("tz", "text"),
                ],
            );
            let sql = format!(
                "UPDATE contacts AS c SET name = COALESCE(v.name, c.name), \
                 lang = COALESCE(v.lang, c.lang), tz = COALESCE(v.tz, c.tz) \
                 FROM {v} WHERE c.id = v.id{pin}",
                pin = self.json_rows_keyed("c.id", 1, 0, "bigint")
            );
            execute(conn, &sql, w.fields, None).await?;
        }
        if !w.labels.is_empty() {
            let v = self.json_rows(1, &[("id", "bigint"), ("label", "text")]);
            let sql = format!(
                "INSERT INTO contact_labels (contact_id, label) SELECT v.id, v.label FROM {v} \
                 WHERE true ON CONFLICT DO NOTHING"
            );
            execute(conn, &sql, w.labels, None).await?;
        }
        if !w.attrs.is_empty() {
            let v = self.json_rows(1, &[("id", "bigint"), ("key", "text"), ("value", "text")]);
            let sql = format!(
                "INSERT INTO contact_attrs (contact_id, key, value) SELECT v.id, v.key, v.value \
                 FROM {v} WHERE true \
                 ON CONFLICT (contact_id, key) DO UPDATE SET value = excluded.value"
            );
            execute(conn, &sql, w.attrs, None).await?;
        }
        if !w.events.is_empty() {
            let v = self.json_rows(1, &[("id", "bigint"), ("kind", "text")]);
            let sql = format!(
                "INSERT INTO consent_events (contact_id, kind, source, at) \
                 SELECT v.id, v.kind, '{import}', $2 FROM {v}",
                import = ConsentSource::Import.as_str()
            );
            execute(conn, &sql, w.events, Some(now_ms)).await?;
        }
        if !w.consent.is_empty() {
            let v = self.json_rows(1, &[("id", "bigint"), ("consent", "text")]);
            let sql = format!(
                "UPDATE contacts AS c SET consent = v.consent, consent_at = $2 FROM {v} \
                 WHERE c.id = v.id{pin}",
                pin = self.json_rows_keyed("c.id", 1, 0, "bigint")
            );
            execute(conn, &sql, w.consent, Some(now_ms)).await?;
        }
        if !w.opted_out.is_empty() {
            // As for any opt-out: off every campaign not yet sent to them (Store::record_consent).
            let sql = format!(
                "UPDATE recipients SET status = 'skipped', reason = 'opted_out' \
                 WHERE {} AND status IN ('queued', 'claimed')",
                self.in_json_ids("contact_id", 1)
            );
            sqlx::query(&sql)
                .bind(json_list(&w.opted_out))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

/// Adds to `w` what `record` changes on `have`; says whether it changes anything, or `None` when
/// the row must not be written at all (it would opt an opted-out contact back in).
fn plan(record: &ContactRecord, have: &Stored, w: &mut Writes) -> Option<bool> {
    let consent = match (record.consent, have.consent) {
        (Some(true), Some(Consent::OptedOut)) => return None,
        (Some(true), Some(Consent::OptedIn)) | (Some(false), Some(Consent::OptedOut)) => None,
        (Some(true), _) => Some(Consent::OptedIn),
        (Some(false), _) => Some(Consent::OptedOut),
        (None, _) => None,
    };
    let differs = |new: Option<&str>, old: &Option<String>| {
        new.filter(|n| old.as_deref() != Some(*n))
            .map(str::to_string)
    };
    let name = differs(record.name.as_deref(), &have.name);
    let lang = differs(record.lang.as_ref().map(Lang::as_str), &have.lang);
    let tz = differs(record.tz.as_deref(), &have.tz);
    let mut changed = false;
    if name.is_some() || lang.is_some() || tz.is_some() {
        w.fields.push(json!([have.id, name, lang, tz]));
        changed = true;
    }
    for label in &record.labels {
        if !have.labels.contains(label.as_str()) {
            w.labels.push(json!([have.id, label.as_str()]));
            changed = true;
        }
    }
    for (key, value) in &record.attrs {
        if have.attrs.get(key.as_str()) != Some(value) {
            w.attrs.push(json!([have.id, key.as_str(), value]));
            changed = true;
        }
    }
    if let Some(consent) = consent {
        let opt_in = consent == Consent::OptedIn;
        if !opt_in {
            w.opted_out.push(have.id);
        }
        w.events.push(json!([have.id, consent_kind(opt_in)]));
        w.consent.push(json!([have.id, consent.as_str()]));
        changed = true;
    }
    Some(changed)
}

fn consent_of(opt_in: bool) -> Consent {
    if opt_in {
        Consent::OptedIn
    } else {
        Consent::OptedOut
    }
}

fn consent_kind(opt_in: bool) -> &'static str {
    ConsentChange::new(opt_in).as_str()
}

async fn execute(
    conn: &mut AnyConnection,
    sql: &str,
    rows: Vec<Value>,
    now_ms: Option<i64>,
) -> Result<()> {
    let mut q = sqlx::query(sql).bind(Value::Array(rows).to_string());
    if let Some(t) = now_ms {
        q = q.bind(t);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}
