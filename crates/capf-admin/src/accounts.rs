//! `/api/v1/accounts` and `/api/v1/tokens` (admin): operator accounts and
//! API tokens. Every change is recorded in the audit log with the
//! operator as actor; passwords and token secrets never are.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use capf_operations::{Account, AccountName, ApiToken, AuditEntry, Role};
use serde::{Deserialize, Serialize};

use crate::{AdminError, AdminState, Operator, password, time_text, token};

/// An account as the API shows it (never its hash).
#[derive(Debug, Serialize)]
pub struct AccountView {
    /// Login name.
    pub name: String,
    /// `read-only`, `helpdesk` or `admin`.
    pub role: &'static str,
    /// When it was made.
    pub created_at: String,
    /// When its password was last set.
    pub password_changed_at: String,
}

impl AccountView {
    fn of(a: &Account) -> Self {
        AccountView {
            name: a.name.to_string(),
            role: a.role.as_str(),
            created_at: time_text::format(a.created_at),
            password_changed_at: time_text::format(a.password_changed_at),
        }
    }
}

/// A token as the API shows it (never its secret or hash).
#[derive(Debug, Serialize)]
pub struct TokenView {
    /// The public id.
    pub id: String,
    /// What it is for.
    pub label: String,
    /// `read-only`, `helpdesk` or `admin`.
    pub role: &'static str,
    /// When it was made.
    pub created_at: String,
    /// Who made it.
    pub created_by: Option<String>,
}

impl TokenView {
    fn of(t: &ApiToken) -> Self {
        TokenView {
            id: t.id.clone(),
            label: t.label.clone(),
            role: t.role.as_str(),
            created_at: time_text::format(t.created_at),
            created_by: t.created_by.as_ref().map(ToString::to_string),
        }
    }
}

fn bad<E: std::fmt::Display>(e: E) -> AdminError {
    AdminError::BadRequest(e.to_string())
}

fn account_name(text: &str) -> Result<AccountName, AdminError> {
    AccountName::parse(text).map_err(bad)
}

/// `GET /api/v1/accounts` (admin).
pub(crate) async fn list(
    State(state): State<AdminState>,
    operator: Operator,
) -> Result<Json<Vec<AccountView>>, AdminError> {
    operator.require(Role::Admin)?;
    let accounts = state.store(|s| Ok(s.accounts()?)).await?;
    Ok(Json(accounts.iter().map(AccountView::of).collect()))
}

/// `POST /api/v1/accounts` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccount {
    name: String,
    role: String,
    password: String,
}

/// `POST /api/v1/accounts` (admin): adds an account.
pub(crate) async fn add(
    State(state): State<AdminState>,
    operator: Operator,
    Json(request): Json<NewAccount>,
) -> Result<Response, AdminError> {
    operator.require(Role::Admin)?;
    let name = account_name(&request.name)?;
    let role: Role = request.role.parse().map_err(bad)?;
    let password = request.password;
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| AdminError::Task(e.to_string()))??;
    let now = state.now();
    let account = Account {
        name,
        role,
        password_hash: hash,
        created_at: now,
        password_changed_at: now,
    };
    let view = AccountView::of(&account);
    let actor = operator.actor();
    state
        .store(move |s| {
            s.add_account(&account)?;
            s.record_event(&AuditEntry::account_added(now, &account).by(actor))?;
            Ok(())
        })
        .await?;
    tracing::info!(account = %view.name, role = view.role, actor = %operator.actor(), "account added");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `PATCH /api/v1/accounts/{name}` body: what changes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountChange {
    role: Option<String>,
    password: Option<String>,
}

/// `PATCH /api/v1/accounts/{name}` (admin): a new role or password. A new
/// password ends the account's sessions.
pub(crate) async fn change(
    State(state): State<AdminState>,
    operator: Operator,
    Path(name): Path<String>,
    Json(request): Json<AccountChange>,
) -> Result<Json<AccountView>, AdminError> {
    operator.require(Role::Admin)?;
    let name = account_name(&name)?;
    let role: Option<Role> = request
        .role
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(bad)?;
    let hash = match request.password {
        Some(password) => Some(
            tokio::task::spawn_blocking(move || password::hash(&password))
                .await
                .map_err(|e| AdminError::Task(e.to_string()))??,
        ),
        None => None,
    };
    let now = state.now();
    let actor = operator.actor();
    let account = state
        .store(move |s| {
            let missing = || AdminError::NotFound(format!("account {name} does not exist"));
            if let Some(role) = role {
                if !s.set_role(&name, role)? {
                    return Err(missing());
                }
                s.record_event(&AuditEntry::account_role_set(now, &name, role).by(actor.clone()))?;
            }
            if let Some(hash) = &hash {
                if !s.set_password(&name, hash, now)? {
                    return Err(missing());
                }
                s.record_event(&AuditEntry::account_password_set(now, &name).by(actor))?;
            }
            s.account(&name)?.ok_or_else(missing)
        })
        .await?;
    tracing::info!(account = %account.name, actor = %operator.actor(), "account changed");
    Ok(Json(AccountView::of(&account)))
}

/// `DELETE /api/v1/accounts/{name}` (admin). The last admin stays (409).
pub(crate) async fn remove(
    State(state): State<AdminState>,
    operator: Operator,
    Path(name): Path<String>,
) -> Result<StatusCode, AdminError> {
    operator.require(Role::Admin)?;
    let name = account_name(&name)?;
    let now = state.now();
    let actor = operator.actor();
    let shown = name.clone();
    state
        .store(move |s| {
            if !s.remove_account(&name)? {
                return Err(AdminError::NotFound(format!(
                    "account {name} does not exist"
                )));
            }
            s.record_event(&AuditEntry::account_removed(now, &name).by(actor))?;
            Ok(())
        })
        .await?;
    tracing::info!(account = %shown, actor = %operator.actor(), "account removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/tokens` (admin).
pub(crate) async fn list_tokens(
    State(state): State<AdminState>,
    operator: Operator,
) -> Result<Json<Vec<TokenView>>, AdminError> {
    operator.require(Role::Admin)?;
    let tokens = state.store(|s| Ok(s.tokens()?)).await?;
    Ok(Json(tokens.iter().map(TokenView::of).collect()))
}

/// `POST /api/v1/tokens` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    label: String,
    role: String,
}

/// A token just made: shown this once.
#[derive(Serialize)]
pub struct CreatedToken {
    /// The token's record.
    #[serde(flatten)]
    pub view: TokenView,
    /// `capf_<id>_<secret>`: send it as `Authorization: Bearer ...`. It
    /// cannot be shown again.
    pub token: String,
}

/// `POST /api/v1/tokens` (admin): makes a token and answers it once.
pub(crate) async fn create_token(
    State(state): State<AdminState>,
    operator: Operator,
    Json(request): Json<NewToken>,
) -> Result<Response, AdminError> {
    operator.require(Role::Admin)?;
    let role: Role = request.role.parse().map_err(bad)?;
    if request.label.is_empty() || request.label.len() > 200 {
        return Err(AdminError::BadRequest(
            "a token's label has 1 to 200 bytes".into(),
        ));
    }
    let now = state.now();
    let created_by = match operator.via {
        crate::Via::Session => AccountName::parse(&operator.name).ok(),
        crate::Via::Token { .. } => None,
    };
    let minted = token::mint(&request.label, role, created_by, now)?;
    let record = minted.record.clone();
    let actor = operator.actor();
    state
        .store(move |s| {
            s.add_token(&record)?;
            s.record_event(&AuditEntry::token_created(now, &record).by(actor))?;
            Ok(())
        })
        .await?;
    tracing::info!(token_id = %minted.record.id, role = %role, actor = %operator.actor(), "API token created");
    let body = CreatedToken {
        view: TokenView::of(&minted.record),
        token: minted.presented,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/v1/tokens/{id}` (admin): revokes a token at once.
pub(crate) async fn remove_token(
    State(state): State<AdminState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    operator.require(Role::Admin)?;
    let now = state.now();
    let actor = operator.actor();
    let shown = capf_operations::escape_text(&id).into_owned();
    state
        .store(move |s| {
            if !s.remove_token(&id)? {
                return Err(AdminError::NotFound(format!(
                    "token {} does not exist",
                    capf_operations::escape_text(&id)
                )));
            }
            s.record_event(&AuditEntry::token_revoked(now, &id).by(actor))?;
            Ok(())
        })
        .await?;
    tracing::info!(token_id = %shown, actor = %operator.actor(), "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
