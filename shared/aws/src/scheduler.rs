//! Recurring charges on EventBridge Scheduler: one one-time `at()` schedule per pending
//! charge of a scheduled mandate (created from the table stream by [`crate::stream`]), and
//! the `recurring-charge` function's handling of what such a schedule delivers.
//!
//! A schedule removes itself after its last invocation (`ActionAfterCompletion: DELETE`).
//! When the function fails (a store error, or a charge not yet due by our clock) Scheduler
//! retries it under the retry policy; an invocation that never succeeds lands on the
//! dead-letter queue, whose alarm pages the operator. The charge itself is idempotent per
//! occurrence, so any number of invocations charge once.

use async_trait::async_trait;
use aws_sdk_scheduler::types::{ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target};
use chrono::Duration;
use paysession_app::ports::{
    ChargeScheduler, ChargeTrigger, MandateStore, MerchantStore, RefundStore, SessionStore, SettingsStore, StoreError, SyncSubject,
    SyncTrigger,
};
use paysession_app::recurring::{Triggered, trigger};
use paysession_app::{Core, Payments};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Retries of a failed invocation: Scheduler's maximum attempts, within a day (a charge
/// later than that is better retried by the occurrence's own soft-decline schedule).
const RETRY_ATTEMPTS: i32 = 185;
const RETRY_MAX_AGE_SECONDS: i32 = 86_400;
/// The scheduler's context attribute substituted into the input at invocation.
const SCHEDULED_TIME: &str = "<aws.scheduler.scheduled-time>";
/// A charge due within this long is retried (Scheduler fired by its clock, before ours);
/// one due later belongs to a newer trigger and this invocation is stale.
const EARLY_TOLERANCE: Duration = Duration::minutes(15);

/// What every schedule targets, from the stream consumer's environment.
#[derive(Debug, Clone)]
pub struct ScheduleTarget {
    /// `PAYSESSION_SCHEDULE_GROUP`: the stack's schedule group.
    pub group: String,
    /// `PAYSESSION_RECURRING_CHARGE_ARN`: the `recurring-charge` function.
    pub function_arn: String,
    /// `PAYSESSION_SCHEDULER_ROLE_ARN`: the role Scheduler assumes to invoke it.
    pub role_arn: String,
    /// `PAYSESSION_SCHEDULE_DLQ_ARN`: where invocations that never succeed go.
    pub dead_letter_arn: String,
    /// `PAYSESSION_PROCESSOR_SYNC_ARN`: the `processor-sync` function (reconciliation).
    pub sync_function_arn: String,
}

impl ScheduleTarget {
    pub const ENV: [&'static str; 5] = [
        "PAYSESSION_SCHEDULE_GROUP",
        "PAYSESSION_RECURRING_CHARGE_ARN",
        "PAYSESSION_SCHEDULER_ROLE_ARN",
        "PAYSESSION_SCHEDULE_DLQ_ARN",
        "PAYSESSION_PROCESSOR_SYNC_ARN",
    ];

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let need = |k: &str| get(k).filter(|v| !v.trim().is_empty()).ok_or_else(|| format!("environment variable {k} is not set"));
        let [group, function_arn, role_arn, dead_letter_arn, sync_function_arn] = Self::ENV;
        Ok(ScheduleTarget {
            group: need(group)?,
            function_arn: need(function_arn)?,
            role_arn: need(role_arn)?,
            dead_letter_arn: need(dead_letter_arn)?,
            sync_function_arn: need(sync_function_arn)?,
        })
    }
}

/// What a schedule delivers to the `recurring-charge` function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledCharge {
    pub merchant_id: String,
    pub mandate_id: String,
    pub occurrence: u32,
    /// When Scheduler meant to invoke (for logs; the mandate's own time decides).
    #[serde(default)]
    pub scheduled_time: Option<String>,
}

pub struct EventBridgeScheduler {
    client: aws_sdk_scheduler::Client,
    target: ScheduleTarget,
}

impl EventBridgeScheduler {
    pub fn new(client: aws_sdk_scheduler::Client, target: ScheduleTarget) -> Self {
        EventBridgeScheduler { client, target }
    }

    /// The target of `trigger`'s schedule, input included.
    fn target_of(&self, trigger: &ChargeTrigger) -> Result<Target, StoreError> {
        let input = json!({
            "merchant_id": trigger.merchant_id, "mandate_id": trigger.mandate_id,
            "occurrence": trigger.occurrence, "scheduled_time": SCHEDULED_TIME,
        });
        self.target_with(&self.target.function_arn, input)
    }

    fn target_with(&self, function_arn: &str, input: Value) -> Result<Target, StoreError> {
        Target::builder()
            .arn(function_arn)
            .role_arn(&self.target.role_arn)
            .input(input.to_string())
            .retry_policy(
                RetryPolicy::builder().maximum_retry_attempts(RETRY_ATTEMPTS).maximum_event_age_in_seconds(RETRY_MAX_AGE_SECONDS).build(),
            )
            .dead_letter_config(DeadLetterConfig::builder().arn(&self.target.dead_letter_arn).build())
            .build()
            .map_err(|e| StoreError::Backend(format!("schedule target: {e}")))
    }
}

fn scheduler_error<E: aws_sdk_scheduler::error::ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: &aws_sdk_scheduler::error::SdkError<E, R>,
) -> StoreError {
    StoreError::Backend(match e.as_service_error() {
        Some(se) => format!("EventBridge Scheduler {}: {}", se.code().unwrap_or("error"), se.message().unwrap_or("no message")),
        None => format!("EventBridge Scheduler: {}", aws_sdk_scheduler::error::DisplayErrorContext(e)),
    })
}

fn code<E: aws_sdk_scheduler::error::ProvideErrorMetadata, R>(e: &aws_sdk_scheduler::error::SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|se| se.code())
}

impl EventBridgeScheduler {
    /// One one-time schedule `name` at `at` (UTC) for `target`, deleting itself when done.
    async fn create_at(&self, name: &str, at: chrono::DateTime<chrono::Utc>, target: Target) -> Result<(), StoreError> {
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| StoreError::Backend(format!("flexible time window: {e}")))?;
        let sent = self
            .client
            .create_schedule()
            .name(name)
            .group_name(&self.target.group)
            .schedule_expression(format!("at({})", at.format("%Y-%m-%dT%H:%M:%S")))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // A replayed stream record: the schedule was created the first time.
            Err(e) if code(&e) == Some("ConflictException") => Ok(()),
            Err(e) => Err(scheduler_error(&e)),
        }
    }
}

#[async_trait]
impl ChargeScheduler for EventBridgeScheduler {
    async fn create(&self, trigger: &ChargeTrigger) -> Result<(), StoreError> {
        self.create_at(&trigger.name, trigger.at, self.target_of(trigger)?).await
    }

    async fn create_sync(&self, trigger: &SyncTrigger) -> Result<(), StoreError> {
        let input = serde_json::to_value(&trigger.subject).map_err(|e| StoreError::Backend(e.to_string()))?;
        let target = self.target_with(&self.target.sync_function_arn, input)?;
        self.create_at(&trigger.name, trigger.at, target).await
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.client.delete_schedule().name(name).group_name(&self.target.group).send().await {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(scheduler_error(&e)),
        }
    }
}

/// Handles one invocation of the `recurring-charge` function. `Err` makes Scheduler retry
/// (and, when retries run out, dead-letter) the invocation.
pub async fn handle_scheduled_charge<S: SessionStore + MerchantStore + MandateStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    input: &Value,
) -> Result<Value, String> {
    let charge: ScheduledCharge = serde_json::from_value(input.clone()).map_err(|e| format!("unreadable scheduled charge {input}: {e}"))?;
    let cx = &cx.at_merchant(&charge.merchant_id).await.map_err(|e| e.to_string())?;
    let result = trigger(cx, pay, &charge.merchant_id, &charge.mandate_id, Some(charge.occurrence)).await.map_err(|e| e.to_string())?;
    tracing::info!(mandate_id = %charge.mandate_id, occurrence = charge.occurrence, scheduled_time = ?charge.scheduled_time, result = ?result, "scheduled charge");
    match result {
        Triggered::NotYetDue { at, .. } if at - cx.clock.now() <= EARLY_TOLERANCE => {
            Err(format!("occurrence {} of {} is due at {at}; retrying", charge.occurrence, charge.mandate_id))
        }
        Triggered::NotYetDue { .. } | Triggered::NothingDue => Ok(json!({"result": "nothing_due"})),
        Triggered::Charged { session_id, .. } => Ok(json!({"result": "charged", "session_id": session_id})),
        Triggered::Failed { session_id, .. } => Ok(json!({"result": "failed", "session_id": session_id})),
        Triggered::RetryAt { at, .. } => Ok(json!({"result": "retry", "at": at})),
    }
}

/// A Scheduler client from the standard AWS environment (`AWS_ENDPOINT_URL_SCHEDULER` for
/// moto).
pub async fn scheduler_client() -> Result<aws_sdk_scheduler::Client, String> {
    Ok(aws_sdk_scheduler::Client::new(&crate::sdk_config().await?))
}

/// Handles one invocation of the `processor-sync` function: the attempt or refund sync, or
/// the void, a reconciliation schedule names. `Err` makes Scheduler retry it.
pub async fn handle_sync<S: SessionStore + RefundStore + MandateStore + MerchantStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    input: &Value,
) -> Result<Value, String> {
    let subject: SyncSubject = serde_json::from_value(input.clone()).map_err(|e| format!("unreadable sync trigger {input}: {e}"))?;
    let cx = &cx.at_merchant(subject.merchant_id()).await.map_err(|e| e.to_string())?;
    let result = paysession_app::reconcile::run_trigger(cx, pay, &subject).await?;
    tracing::info!(subject = ?subject, result = ?result, "reconciliation");
    Ok(json!({"result": result.unwrap_or_else(|| "nothing_due".into())}))
}
