//! The service parameters: `GET /api/v1/parameters` (every role) and
//! `PATCH /api/v1/parameters` (admin), over the [`ParameterStore`] the
//! embedder gave ([`AdminState::with_parameters`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use capf_operations::{AuditEntry, OperationsError, Role, ServiceParameters};
use serde::Serialize;

use crate::body::JsonObject;
use crate::error::ErrorBody;
use crate::state::ParameterStore;
use crate::{AdminError, AdminState, Operator};

/// One service parameter.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParameterView {
    /// Its name (as `capf params set` takes it).
    pub name: &'static str,
    /// Its value now.
    pub value: String,
    /// Its default.
    pub default: String,
    /// What it does and the values it takes.
    pub help: &'static str,
}

/// The service parameters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParametersView {
    /// Every parameter, in a fixed order.
    pub parameters: Vec<ParameterView>,
    /// When changes take effect.
    pub note: &'static str,
}

/// When a change applies: the CAPF server reads the parameters at start.
const NOTE: &str = "the CAPF server reads the service parameters when it starts: \
                    restart it to apply a change";

fn view(params: &ServiceParameters) -> ParametersView {
    ParametersView {
        parameters: params
            .describe()
            .into_iter()
            .map(|p| ParameterView {
                name: p.name,
                value: p.value,
                default: p.default,
                help: p.help,
            })
            .collect(),
        note: NOTE,
    }
}

fn parameter_store(state: &AdminState) -> Result<Arc<dyn ParameterStore>, AdminError> {
    state.inner.parameters.get().cloned().ok_or_else(|| {
        AdminError::NotFound("this server does not serve its service parameters".into())
    })
}

/// A refusal of the value or name is the operator's mistake (400).
fn refused(e: OperationsError) -> AdminError {
    match e {
        OperationsError::UnknownParameter { .. } | OperationsError::InvalidParameter { .. } => {
            AdminError::BadRequest(e.to_string())
        }
        other => AdminError::from(other),
    }
}

async fn blocking<T, F>(call: F) -> Result<T, AdminError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, AdminError> + Send + 'static,
{
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| AdminError::Task(e.to_string()))?
}

/// `GET /api/v1/parameters`: every service parameter with its value,
/// default and help text.
#[utoipa::path(
    get,
    path = "/api/v1/parameters",
    tag = "parameters",
    operation_id = "parameters",
    responses(
        (status = 200, description = "The service parameters", body = ParametersView),
        (status = 404, description = "This server does not serve its service parameters", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn show(
    State(state): State<AdminState>,
    _operator: Operator,
) -> Result<Json<ParametersView>, AdminError> {
    let store = parameter_store(&state)?;
    let params = blocking(move || store.load_parameters().map_err(AdminError::from)).await?;
    Ok(Json(view(&params)))
}

/// `PATCH /api/v1/parameters` (admin): new values by name; `null` returns
/// a parameter to its default. Every value is checked before any is
/// stored; a name or value refused changes nothing (400). Applies when the
/// CAPF server next starts.
#[utoipa::path(
    patch,
    path = "/api/v1/parameters",
    tag = "parameters",
    operation_id = "set_parameters",
    request_body(
        content = BTreeMap<String, Option<String>>,
        description = "New values by parameter name (`null`: back to the default)",
        example = json!({"lsc_validity_years": "2", "auth_failure_limit": null}),
    ),
    responses(
        (status = 200, description = "The service parameters as they now are", body = ParametersView),
        (status = 403, description = "Not an admin, or a browser session without its CSRF token", body = ErrorBody),
        (status = 404, description = "This server does not serve its service parameters", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn change(
    State(state): State<AdminState>,
    operator: Operator,
    JsonObject(changes): JsonObject<BTreeMap<String, Option<String>>>,
) -> Result<Json<ParametersView>, AdminError> {
    operator.require(Role::Admin)?;
    let store = parameter_store(&state)?;
    let now = state.now();
    let actor = operator.actor();
    let (params, entries) = blocking(move || {
        // Checked on a copy first: all or nothing.
        let mut trial = store.load_parameters()?;
        let defaults = ServiceParameters::default();
        for (name, value) in &changes {
            match value {
                Some(value) => trial.set(name, value).map_err(refused)?,
                None if defaults.get(name).is_none() => {
                    return Err(refused(OperationsError::UnknownParameter {
                        name: name.clone(),
                    }));
                }
                None => {}
            }
        }
        let mut params = trial;
        let mut entries = Vec::new();
        for (name, value) in &changes {
            params = match value {
                Some(value) => store.save_parameter(name, value).map_err(refused)?,
                None => store.reset_parameter(name).map_err(refused)?,
            };
            let now_value = params.get(name).unwrap_or_default();
            entries.push(
                AuditEntry::without_device(
                    now,
                    "parameter-set",
                    format!("service parameter {name} = {now_value}"),
                )
                .by(actor.clone()),
            );
        }
        Ok((params, entries))
    })
    .await?;
    let count = entries.len();
    state
        .store(move |s| {
            for entry in &entries {
                s.record_event(entry)?;
            }
            Ok(())
        })
        .await?;
    tracing::info!(actor = %operator.actor(), changed = count, "service parameters changed");
    Ok(Json(view(&params)))
}
