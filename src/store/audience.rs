//! An audience expression as SQL: the store's half of [`AudienceExpr`]. The domain says who is
//! in an audience; only the store knows it as a `WHERE` clause, so no SQL text crosses its API.

use crate::domain::audience::{AudienceExpr, Condition};

/// A SQL boolean expression over the alias `c` (table `contacts`), with placeholders numbered
/// from `$first_param`, and the values to bind to them in order. The expression is
/// self-contained (parenthesised where needed) so a caller can `AND` it into any query, and never
/// yields NULL, so `NOT (...)` is safe too. Portable between SQLite and PostgreSQL.
pub(super) fn condition(expr: &AudienceExpr, first_param: usize) -> (String, Vec<String>) {
    condition_within(expr, first_param, None)
}

/// [`condition`] for the contacts whose id lies in `(lo, hi]`, given as two placeholders the
/// caller binds (a page of a resolution). The range is repeated inside every label and attribute
/// subquery: it changes nothing there (`contact_id = c.id`), but without it PostgreSQL plans a
/// page of 10,000 contacts against a label held by a million as a scan of the whole label index.
pub(super) fn condition_in_range(
    expr: &AudienceExpr,
    first_param: usize,
    lo: &str,
    hi: &str,
) -> (String, Vec<String>) {
    condition_within(expr, first_param, Some((lo, hi)))
}

fn condition_within(
    expr: &AudienceExpr,
    first_param: usize,
    range: Option<(&str, &str)>,
) -> (String, Vec<String>) {
    let within = |alias: &str| match range {
        Some((lo, hi)) => format!(" AND {alias}.contact_id > {lo} AND {alias}.contact_id <= {hi}"),
        None => String::new(),
    };
    let mut b = Binds {
        next: first_param,
        values: Vec::new(),
    };
    let sql = match expr {
        // `IN ()` is a syntax error in PostgreSQL, so an empty list is spelled out as false.
        AudienceExpr::Addresses(list) if list.is_empty() => "1 = 0".to_string(),
        AudienceExpr::Addresses(list) => {
            let params: Vec<String> = list.iter().map(|a| b.bind(a)).collect();
            format!("c.address IN ({})", params.join(", "))
        }
        AudienceExpr::Labels {
            any_of,
            exclude,
            conditions,
        } => {
            let mut clauses = Vec::new();
            if !any_of.is_empty() {
                let groups: Vec<String> = any_of
                    .iter()
                    .map(|group| {
                        let has: Vec<String> = group
                            .iter()
                            .map(|l| has_label_sql(&b.bind(l), &within("l")))
                            .collect();
                        join_clauses(has, " AND ")
                    })
                    .collect();
                clauses.push(join_clauses(groups, " OR "));
            }
            if !exclude.is_empty() {
                let params: Vec<String> = exclude.iter().map(|l| b.bind(l)).collect();
                clauses.push(format!(
                    "NOT EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label IN ({}){})",
                    params.join(", "),
                    within("l")
                ));
            }
            for condition in conditions {
                clauses.push(match condition {
                    Condition::Attr { key, value } => format!(
                        "EXISTS (SELECT 1 FROM contact_attrs a WHERE a.contact_id = c.id AND a.key = {} AND a.value = {}{})",
                        b.bind(key),
                        b.bind(value),
                        within("a")
                    ),
                    // Appending `-` to both sides makes `pt` match `pt` and `pt-br` but not
                    // `ptx`; `_` is folded to `-` first because WhatsApp spells it `pt_BR`.
                    // The code has no `%` or `_` left, so LIKE sees no stray wildcard.
                    Condition::Lang(lang) => format!(
                        "(REPLACE(LOWER(COALESCE(c.lang, '')), '_', '-') || '-') LIKE {}",
                        b.bind(&format!(
                            "{}-%",
                            lang.as_str().to_ascii_lowercase().replace('_', "-")
                        ))
                    ),
                });
            }
            join_clauses(clauses, " AND ")
        }
    };
    (sql, b.values)
}

fn has_label_sql(param: &str, within: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label = {param}{within})"
    )
}

/// Joins clauses with `op`, parenthesising only a compound result; no clause at all is true.
fn join_clauses(clauses: Vec<String>, op: &str) -> String {
    match clauses.len() {
        0 => "1 = 1".to_string(),
        1 => clauses.into_iter().next().unwrap_or_default(),
        _ => format!("({})", clauses.join(op)),
    }
}

/// Hands out `$n` placeholders in order and remembers their values.
struct Binds {
    next: usize,
    values: Vec<String>,
}

impl Binds {
    fn bind(&mut self, value: &str) -> String {
        self.values.push(value.to_string());
        let placeholder = format!("${}", self.next);
        self.next += 1;
        placeholder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audience::parse_audience;

    fn strs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sql_for_addresses() {
        let expr = parse_audience("+15550001,tg:7").expect("parses");
        assert_eq!(
            condition(&expr, 3),
            (
                "c.address IN ($3, $4)".to_string(),
                strs(&["wa:15550001", "tg:7"])
            )
        );
        assert_eq!(
            condition(&AudienceExpr::Addresses(vec![]), 1),
            ("1 = 0".to_string(), vec![])
        );
    }

    #[test]
    fn sql_for_every_contact() {
        assert_eq!(
            condition(&AudienceExpr::all(), 1),
            ("1 = 1".to_string(), vec![])
        );
    }

    #[test]
    fn a_range_reaches_every_subquery_and_binds_nothing() {
        let expr = parse_audience("vip -blocked attr.city=Lisbon").expect("parses");
        let (sql, binds) = condition_in_range(&expr, 5, "$3", "$4");
        assert_eq!(binds, condition(&expr, 5).1);
        assert_eq!(
            sql.matches("l.contact_id > $3 AND l.contact_id <= $4")
                .count(),
            2
        );
        assert_eq!(
            sql.matches("a.contact_id > $3 AND a.contact_id <= $4")
                .count(),
            1
        );
    }

    #[test]
    fn sql_for_one_label() {
        assert_eq!(
            condition(&parse_audience("vip").expect("parses"), 1),
            (
                "EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label = $1)"
                    .to_string(),
                strs(&["vip"])
            )
        );
    }

    #[test]
    fn sql_for_groups_excludes_and_conditions() {
        let has = |n: usize| {
            format!("EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label = ${n})")
        };
        let expr = parse_audience("vip+new,staff -blocked -spam attr.city=Lisbon lang=pt")
            .expect("parses");
        let (sql, binds) = condition(&expr, 2);
        let want = format!(
            "((({} AND {}) OR {}) AND NOT EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = c.id AND l.label IN ($5, $6)) AND EXISTS (SELECT 1 FROM contact_attrs a WHERE a.contact_id = c.id AND a.key = $7 AND a.value = $8) AND (REPLACE(LOWER(COALESCE(c.lang, '')), '_', '-') || '-') LIKE $9)",
            has(2),
            has(3),
            has(4)
        );
        assert_eq!(sql, want);
        assert_eq!(
            binds,
            strs(&["vip", "new", "staff", "blocked", "spam", "city", "Lisbon", "pt-%"])
        );
    }

    #[test]
    fn sql_placeholders_match_binds_for_every_shape() {
        for spec in [
            "vip",
            "vip,new",
            "vip+new",
            "-blocked",
            "all",
            "lang=pt",
            "attr.city=Lisbon",
            "vip+new,staff -blocked lang=pt attr.a=1 attr.b=2",
            "+15550001,tg:1,wa:15550002",
        ] {
            let expr = parse_audience(spec).expect(spec);
            for first in [1, 4] {
                let (sql, binds) = condition(&expr, first);
                let mut used: Vec<usize> = sql
                    .split('$')
                    .skip(1)
                    .map(|rest| {
                        let digits: String =
                            rest.chars().take_while(char::is_ascii_digit).collect();
                        digits.parse().expect("placeholder number")
                    })
                    .collect();
                used.sort_unstable();
                let want: Vec<usize> = (first..first + binds.len()).collect();
                assert_eq!(used, want, "{spec:?}: {sql}");
                assert_eq!(
                    sql.matches('(').count(),
                    sql.matches(')').count(),
                    "{spec:?}"
                );
            }
        }
    }
}
