//! Builds herald from configuration: the store, the channels, the engine, and (for `herald run`)
//! the HTTP server; runs it until a shutdown signal.

pub mod console;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::channels::intake::Intake;
use crate::channels::whatsapp::client::{WhatsAppClient, WhatsAppConfig};
use crate::channels::whatsapp::TemplateClient;
use crate::channels::{Channel, ChannelRouter, TemplateCatalog};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::engine::{Engine, EngineError};
use crate::store::{Backend, Store};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
}

/// Opens the store, recovers interrupted work and assembles the engine over `channels`.
pub async fn build_engine(
    config: Config,
    clock: SharedClock,
    channels: Vec<Arc<dyn Channel>>,
) -> Result<Arc<Engine>, EngineError> {
    let store = Store::connect(&config.database_url).await?;
    let mut router = ChannelRouter::new();
    for c in channels {
        router.add(c);
    }
    let single_process = store.backend() == Backend::Sqlite;
    let engine = Arc::new(Engine::new(store, Arc::new(config), clock, router));
    engine.set_admin_desk(Arc::new(crate::commands::Desk));
    // On SQLite this process is the only one, so every lease left behind is a crashed run's.
    engine.recover(single_process).await?;
    Ok(engine)
}

/// `herald status`: the `/status` screen, read without touching anything. The engine is built
/// without recovering leases (a running `herald run` owns them) and without channels.
pub async fn status_screen(config: Config, clock: SharedClock) -> Result<String, EngineError> {
    let store = Store::connect(&config.database_url).await?;
    let engine = Engine::new(store, Arc::new(config), clock, ChannelRouter::new());
    let overview = engine.overview().await;
    engine.store.close().await;
    Ok(crate::commands::status::screen(&engine, &overview?))
}

/// The long-running bot (`herald run`): channels from configuration, the HTTP server, the
/// scheduler and the dispatcher.
pub struct App {
    pub engine: Arc<Engine>,
    listener: TcpListener,
    addr: SocketAddr,
    telegram: Option<Arc<crate::channels::telegram::TelegramChannel>>,
}

impl App {
    /// Builds everything and binds the HTTP listener (so a test can bind port 0 and read the
    /// real port before anything runs).
    pub async fn build(config: Config, clock: SharedClock) -> Result<App, AppError> {
        if config.webhook_buffer_bytes < crate::http::WEBHOOK_BODY_LIMIT {
            return Err(AppError::Config(format!(
                "WEBHOOK_BUFFER_MB: at least {} MiB, so that the largest webhook body fits",
                crate::http::WEBHOOK_BODY_LIMIT / (1024 * 1024)
            )));
        }
        let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
        if let Some(wa) = whatsapp_from_config(&config)? {
            channels.push(wa);
        }
        let telegram = crate::channels::telegram::TelegramChannel::from_config_with_clock(
            &config,
            clock.clone(),
        )
        .map_err(|e| AppError::Config(e.to_string()))?;
        if let Some(tg) = &telegram {
            channels.push(tg.clone());
        }
        if channels.is_empty() {
            tracing::warn!(
                "no channel configured: set WHATSAPP_TOKEN and WHATSAPP_PHONE_NUMBER_ID, or TELEGRAM_TOKEN"
            );
        }
        let listener = TcpListener::bind(&config.http_addr)
            .await
            .map_err(|source| AppError::Listen {
                addr: config.http_addr.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AppError::Listen {
            addr: config.http_addr.clone(),
            source,
        })?;
        let catalog = template_catalog(&config)?;
        let engine = build_engine(config, clock, channels).await?;
        if let Some(catalog) = catalog {
            engine.set_template_catalog(catalog);
        }
        Ok(App {
            engine,
            listener,
            addr,
            telegram,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs until `shutdown` fires: then stops claiming, lets in-flight sends finish, stops the
    /// HTTP server after its in-flight requests, and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        // One set of webhook limits for the whole server: WhatsApp and Telegram share them.
        let intake = Intake::from_config(&self.engine.config);
        let telegram_hook = self
            .telegram
            .as_ref()
            .and_then(|tg| tg.webhook_router(intake.clone()));
        let router = crate::http::router(self.engine.clone(), intake, telegram_hook);
        let server_shutdown = shutdown.clone();
        let header_timeout = self.engine.config.http_header_timeout;
        let server = tokio::spawn(serve::serve(
            self.listener,
            router,
            header_timeout,
            server_shutdown,
        ));
        let telegram = self.telegram.map(|tg| {
            let menu = crate::commands::help::command_list();
            tg.start(self.engine.clone(), menu, shutdown.clone())
        });
        self.engine.clone().run(shutdown.clone()).await;
        if let Some(t) = telegram {
            let _ = t.await;
        }
        if let Err(e) = server.await {
            tracing::error!(error = %e, "HTTP server task failed");
        }
        self.engine.store.close().await;
        Ok(())
    }
}

fn whatsapp_from_config(config: &Config) -> Result<Option<Arc<dyn Channel>>, AppError> {
    let (Some(token), Some(number)) = (&config.whatsapp_token, &config.whatsapp_phone_number_id)
    else {
        return Ok(None);
    };
    let mut wa = WhatsAppConfig::new(&config.whatsapp_api_url, number, token);
    wa.max_per_second = config.whatsapp_mps;
    let client = WhatsAppClient::new(wa).map_err(|e| AppError::Config(e.to_string()))?;
    Ok(Some(Arc::new(client)))
}

/// The Business account's template list, when both a token and `WHATSAPP_BUSINESS_ACCOUNT_ID`
/// are set; without an account id herald works with declared templates only.
fn template_catalog(config: &Config) -> Result<Option<Arc<dyn TemplateCatalog>>, AppError> {
    let (Some(token), Some(account)) =
        (&config.whatsapp_token, &config.whatsapp_business_account_id)
    else {
        return Ok(None);
    };
    let client = TemplateClient::new(
        &config.whatsapp_api_url,
        account,
        token,
        crate::channels::whatsapp::client::DEFAULT_REQUEST_TIMEOUT,
    )
    .map_err(|e| AppError::Config(e.to_string()))?;
    Ok(Some(Arc::new(client)))
}
