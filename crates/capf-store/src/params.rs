//! Service parameters in the `service_parameters` table: only the
//! values the operator set; everything else is the default.

use capf_operations::ServiceParameters;
use rusqlite::Connection;

use crate::{SqliteStore, StoreError};

fn load_in(conn: &Connection) -> Result<ServiceParameters, StoreError> {
    let context = "reading the service parameters";
    let mut stmt = conn
        .prepare_cached("SELECT name, value FROM service_parameters ORDER BY name")
        .map_err(StoreError::sqlite(context))?;
    let mut rows = stmt.query([]).map_err(StoreError::sqlite(context))?;
    let mut params = ServiceParameters::default();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(context))? {
        let name: String = row.get(0).map_err(StoreError::sqlite(context))?;
        let value: String = row.get(1).map_err(StoreError::sqlite(context))?;
        params
            .set(&name, &value)
            .map_err(|source| StoreError::StoredParameter {
                name,
                source: Box::new(source),
            })?;
    }
    Ok(params)
}

impl SqliteStore {
    /// The service parameters: the defaults with the stored values applied.
    ///
    /// # Errors
    /// [`StoreError::StoredParameter`] if a stored value no longer
    /// validates; [`StoreError::Sqlite`].
    pub fn load_parameters(&self) -> Result<ServiceParameters, StoreError> {
        load_in(&*self.lock()?)
    }

    /// Validates and stores one parameter (as `capf params set NAME VALUE`),
    /// in its normalised form (`" P256 "` is stored as `p256`). Returns
    /// the parameters as they now are. A running server keeps the values
    /// it started with.
    ///
    /// # Errors
    /// [`StoreError::Operations`] with
    /// [`UnknownParameter`](capf_operations::OperationsError::UnknownParameter)
    /// or [`InvalidParameter`](capf_operations::OperationsError::InvalidParameter);
    /// nothing is stored then.
    pub fn save_parameter(&self, name: &str, value: &str) -> Result<ServiceParameters, StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.with_transaction(move |tx| {
            let (name, value) = (name.as_str(), value.as_str());
            let mut params = load_in(tx)?;
            params.set(name, value)?;
            let normalised = params.get(name).unwrap_or_else(|| value.to_owned());
            tx.execute(
                "INSERT INTO service_parameters (name, value) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, &normalised),
            )
            .map_err(StoreError::sqlite(format!(
                "saving service parameter {name}"
            )))?;
            Ok(params)
        })
    }

    /// Returns one parameter to its default. Returns the parameters as
    /// they now are.
    ///
    /// # Errors
    /// [`StoreError::Operations`] with
    /// [`UnknownParameter`](capf_operations::OperationsError::UnknownParameter)
    /// for a name that does not exist.
    pub fn reset_parameter(&self, name: &str) -> Result<ServiceParameters, StoreError> {
        if ServiceParameters::default().get(name).is_none() {
            return Err(capf_operations::OperationsError::UnknownParameter {
                name: name.to_owned(),
            }
            .into());
        }
        let name = name.to_owned();
        self.with_transaction(move |tx| {
            tx.execute("DELETE FROM service_parameters WHERE name = ?1", [&name])
                .map_err(StoreError::sqlite(format!(
                    "resetting service parameter {name}"
                )))?;
            load_in(tx)
        })
    }
}
