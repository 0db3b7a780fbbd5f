//! The console channel (`herald console`): stdin lines in, stdout lines out. `/...` lines are the
//! console admin's commands, `@<address> <text>` is a customer writing in, and every message to
//! a customer prints as `-> <address>: <text>`. It runs the same engine and rules as the real
//! channels (WhatsApp's window and templates included), so a demo shows what would happen.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{
    Audience, Channel, ChannelKind, MediaRef, MediaSource, Outbound, OutboundBody, SendError, Sent,
};

/// The address of the person at the console; they are the admin.
pub const CONSOLE_ADMIN: &str = "console";

/// Prints what herald says; keeps a transcript so tests can read it.
#[derive(Default)]
pub struct ConsoleChannel {
    transcript: Mutex<Vec<String>>,
    echo: bool,
    /// Periodic progress lines: wanted by a person watching, noise in a scripted transcript.
    progress: bool,
}

impl ConsoleChannel {
    /// A console that prints to stdout.
    pub fn stdout() -> Arc<Self> {
        Arc::new(ConsoleChannel {
            transcript: Mutex::new(Vec::new()),
            echo: true,
            progress: false,
        })
    }

    /// A console for a person at a terminal: prints progress while campaigns send.
    pub fn interactive() -> Arc<Self> {
        Arc::new(ConsoleChannel {
            transcript: Mutex::new(Vec::new()),
            echo: true,
            progress: true,
        })
    }

    /// A console that only records (for tests).
    pub fn recording() -> Arc<Self> {
        Arc::new(ConsoleChannel::default())
    }

    pub fn print(&self, line: &str) {
        if self.echo {
            println!("{line}");
        }
        crate::lock(&self.transcript).push(line.to_string());
    }

    /// Everything printed so far, one entry per message (admin replies may span lines).
    pub fn transcript(&self) -> Vec<String> {
        crate::lock(&self.transcript).clone()
    }

    /// Messages a customer received, as `(address, text)`.
    pub fn delivered(&self) -> Vec<(String, String)> {
        self.transcript()
            .iter()
            .filter_map(|l| l.strip_prefix("-> "))
            .filter_map(|l| l.split_once(": "))
            .map(|(a, t)| (a.to_string(), t.to_string()))
            .collect()
    }
}

/// How the console names a message's media: its link, or the attached file's name.
fn media_name(m: &MediaRef) -> String {
    match &m.source {
        MediaSource::Link(link) => link.clone(),
        MediaSource::Id(id) => id.clone(),
        MediaSource::File(file) => file.name.clone(),
    }
}

#[async_trait]
impl Channel for ConsoleChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Console
    }

    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        match msg.audience {
            Audience::Admin => self.print(msg.body.rendered()),
            // Phone numbers print as console users type them (`+15550001`), not as stored.
            Audience::Customer => {
                let to = crate::domain::Address::parse(&msg.to)
                    .map_or_else(|_| msg.to.clone(), |a| a.display_phone());
                // The console shows no pictures: the media is named before the text.
                let media = match msg.body.media() {
                    Some(m) => format!("[{} {}] ", m.kind, media_name(m)),
                    None => String::new(),
                };
                self.print(&format!("-> {to}: {media}{}", msg.body.rendered()));
                // What the contact could tap, on a line of its own after the text (a customer
                // taps one by typing its title: `@<address> <title>`).
                if let OutboundBody::Interactive { choices, .. } = &msg.body {
                    self.print(&format!("   {}", choices.describe()));
                }
            }
        }
        Ok(Sent::default())
    }

    fn progress_interval(&self) -> Option<std::time::Duration> {
        self.progress.then_some(std::time::Duration::from_secs(5))
    }
}
