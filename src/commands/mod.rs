//! Admin commands: text -> [`Command`] (pure, in `parse`), then [`Command`] -> reply (in `handlers`).
//! The grammar is documented in the top-level `commands/` folder, from which `/help` is built.

pub mod handlers;
pub mod help;
pub mod parse;

pub use crate::domain::actions::{PostAction, RecipientEvent};
use crate::domain::{Address, AttrKey, Label, Lang};
pub use parse::{parse, ParseError};

/// The command layer as the engine's [`crate::engine::AdminDesk`]: parses and applies one
/// admin message, and words the reply.
pub struct Desk;

#[async_trait::async_trait]
impl crate::engine::AdminDesk for Desk {
    async fn answer(&self, engine: &crate::engine::Engine, admin: &str, text: &str) -> String {
        handlers::run(engine, admin, text).await
    }
}

/// A label expression or explicit addresses, kept as typed; `domain::audience` compiles it.
pub type AudienceSpec = String;

/// One parsed admin command. Everything is validated for shape here (numbers are numbers, times
/// parse, keys are known); whether ids exist is the handler's business.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help {
        topic: Option<String>,
    },
    ContactAdd {
        address: Address,
        name: Option<String>,
        labels: Vec<Label>,
        lang: Option<Lang>,
        tz: Option<String>,
        optin: bool,
        /// Extra `attr.KEY=value` pairs.
        attrs: Vec<(AttrKey, String)>,
    },
    ContactShow {
        address: Address,
    },
    /// `/contact import`: the CSV rides along as an attachment (or follows on the next lines in the
    /// console); `csv` is `None` when nothing was attached.
    ContactImport {
        csv: Option<String>,
    },
    LabelAdd {
        label: Label,
        addresses: Vec<Address>,
    },
    LabelRemove {
        label: Label,
        addresses: Vec<Address>,
    },
    OptIn {
        address: Address,
    },
    OptOut {
        address: Address,
    },
    TemplateAdd {
        name: String,
        lang: Lang,
        category: TemplateCategory,
        body: String,
    },
    TemplateList,
    CampaignNew {
        title: String,
    },
    CampaignAudience {
        id: i64,
        audience: AudienceSpec,
    },
    CampaignText {
        id: i64,
        text: String,
    },
    CampaignVariant {
        id: i64,
        text: String,
    },
    CampaignTemplate {
        id: i64,
        name: String,
        lang: Lang,
        /// Literal text, `{{name}}` or `{{attr.KEY}}`, in `{{1}}..{{n}}` order.
        params: Vec<String>,
    },
    CampaignPace {
        id: i64,
        /// Messages per second; `Some(0.0)` turns campaign pacing off (channel ceilings still hold).
        rate: Option<f64>,
        /// Random delay between messages, seconds.
        delay: Option<(f64, f64)>,
        batch: Option<u32>,
        /// Pause between batches, seconds.
        pause: Option<f64>,
    },
    CampaignSchedule {
        id: i64,
        /// Local time as typed, `YYYY-MM-DD HH:MM`.
        at: chrono::NaiveDateTime,
        /// IANA zone if given; the admin's `TZ` otherwise.
        tz: Option<chrono_tz::Tz>,
    },
    /// Turns a campaign into a recurring one: each occurrence is its own run.
    CampaignRepeat {
        id: i64,
        repeat: crate::domain::schedule::Repeat,
    },
    CampaignPreview {
        id: i64,
    },
    CampaignTest {
        id: i64,
    },
    CampaignSend {
        id: i64,
    },
    CampaignPause {
        id: i64,
    },
    CampaignResume {
        id: i64,
    },
    CampaignCancel {
        id: i64,
    },
    CampaignList {
        status: Option<String>,
    },
    CampaignShow {
        id: i64,
    },
    CampaignReport {
        id: i64,
        format: ReportFormat,
    },
    TriggerAdd {
        pattern: TriggerPattern,
        target: TriggerTarget,
    },
    DripNew {
        title: String,
    },
    /// Appends a step: sent `delay_ms` after the previous step (after enrolment for the first).
    DripStep {
        id: i64,
        delay_ms: i64,
        content: StepContent,
    },
    DripEnroll {
        id: i64,
        audience: AudienceSpec,
    },
    DripStopOnReply {
        id: i64,
        on: bool,
    },
    DripShow {
        id: i64,
    },
    /// `/on <campaign> <event> <action>`: what to do to a recipient's contact when it happens.
    On {
        campaign_id: i64,
        event: RecipientEvent,
        action: PostAction,
    },
    TriggerList,
    TriggerRemove {
        id: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
}

impl TemplateCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateCategory::Marketing => "marketing",
            TemplateCategory::Utility => "utility",
            TemplateCategory::Authentication => "authentication",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "marketing" => Some(TemplateCategory::Marketing),
            "utility" => Some(TemplateCategory::Utility),
            "authentication" => Some(TemplateCategory::Authentication),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Csv,
    Chart,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TriggerPattern {
    /// A whole word anywhere in the text, case-insensitive.
    Keyword(String),
    /// The source between the slashes of `/regex/` (already checked to compile).
    Regex(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerTarget {
    Campaign(i64),
    Drip(i64),
}

/// What one drip step sends.
#[derive(Debug, Clone, PartialEq)]
pub enum StepContent {
    Text(String),
    Template {
        name: String,
        lang: Lang,
        params: Vec<String>,
    },
}
