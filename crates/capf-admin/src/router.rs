//! The routes of the admin API.

use axum::Router;
use axum::middleware::map_response;
use axum::routing::{delete, get, patch, post};

use crate::{AdminState, accounts, auth, devices, error, misc, openapi, pages, params};

/// The admin API under `/api/v1`, ready to serve or to mount in an
/// embedder's own axum application (`app.merge(capf_admin::router(state))`).
///
/// Give the server the client's address (`ConnectInfo<SocketAddr>`, as
/// [`serve`](crate::serve) and axum's
/// `into_make_service_with_connect_info::<SocketAddr>()` do) so that
/// failed logins are also counted per address; without it they are
/// counted per account only.
///
/// Every error answer is JSON, `{"error": "..."}`; the OpenAPI document of
/// the routes is at `GET /api/v1/openapi.json` (no authentication needed),
/// and [`openapi`](crate::openapi()) returns it.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/health", get(misc::health))
        .route("/openapi.json", get(openapi::document))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/session", get(auth::session))
        .route("/session/password", post(accounts::change_own_password))
        .route("/devices", get(devices::find).post(devices::create))
        .route("/devices/schedule", post(devices::schedule))
        .route(
            "/devices/{name}",
            get(devices::show)
                .patch(devices::patch)
                .delete(devices::remove),
        )
        .route(
            "/devices/{name}/generate-string",
            post(devices::generate_string),
        )
        .route("/devices/{name}/certificates", get(devices::certificates))
        .route("/devices/{name}/revoke-lsc", post(devices::revoke_lsc))
        .route("/accounts", get(accounts::list).post(accounts::add))
        .route(
            "/accounts/{name}",
            patch(accounts::change).delete(accounts::remove),
        )
        .route(
            "/tokens",
            get(accounts::list_tokens).post(accounts::create_token),
        )
        .route("/tokens/{id}", delete(accounts::remove_token))
        .route("/audit", get(misc::audit))
        .route("/report", get(misc::report))
        .route("/parameters", get(params::show).patch(params::change))
        .route("/ca/certificate", get(misc::ca_certificate))
        .fallback(misc::not_found);
    // The console's pages answer HTML, so they are merged outside the
    // layer that makes every API refusal JSON.
    Router::new()
        .nest("/api/v1", api)
        .fallback(misc::not_found)
        .with_state(state.clone())
        .layer(map_response(error::json_errors))
        .merge(pages::routes(state))
}
