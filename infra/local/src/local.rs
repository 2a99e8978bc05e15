//! What the local server runs on, shared by the server and its background pipelines.

use std::sync::Arc;

use paysession_app::ports::{Store, WebhookSender};
use paysession_http::mount::Mounted;

/// Everything the local server runs: every handler mounted on the store, and the webhook
/// sender its in-process pipeline delivers with.
#[derive(Clone)]
pub struct Local {
    pub app: Mounted<dyn Store>,
    pub sender: Arc<dyn WebhookSender>,
}
