//! `IdGeneratorFactory`: one generator per (table, field) of a database.
//!
//! Services usually number several tables of one database; the factory
//! creates each table's generator on first use and hands out the same one
//! afterwards, so every caller shares one cache per counter.

use std::collections::HashMap;
use std::sync::Mutex;

use kxy_core::SegmentKey;

use crate::{ClientError, GeneratorConfig, IdGenerator, SegmentClient};

pub struct IdGeneratorFactory {
    client: SegmentClient,
    system_code: String,
    db_name: String,
    config: GeneratorConfig,
    generators: Mutex<HashMap<(String, String), IdGenerator>>,
}

impl IdGeneratorFactory {
    /// Generators for counters of `system_code`/`db_name`, created with
    /// `config` unless [`Self::generator_with`] says otherwise.
    pub fn new(
        client: SegmentClient,
        system_code: &str,
        db_name: &str,
        config: GeneratorConfig,
    ) -> Self {
        IdGeneratorFactory {
            client,
            system_code: system_code.to_owned(),
            db_name: db_name.to_owned(),
            config,
            generators: Mutex::new(HashMap::new()),
        }
    }

    /// The generator of `table_name`.`field_name`, created on first use.
    pub fn generator(
        &self,
        table_name: &str,
        field_name: &str,
    ) -> Result<IdGenerator, ClientError> {
        self.generator_with(table_name, field_name, self.config)
    }

    /// As [`Self::generator`]; `config` applies only if the generator is
    /// created by this call.
    pub fn generator_with(
        &self,
        table_name: &str,
        field_name: &str,
        config: GeneratorConfig,
    ) -> Result<IdGenerator, ClientError> {
        let mut generators = self.generators.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (table_name.to_owned(), field_name.to_owned());
        if let Some(generator) = generators.get(&slot) {
            return Ok(generator.clone());
        }
        let key = SegmentKey::new(&self.system_code, &self.db_name, table_name, field_name)
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        let generator = IdGenerator::new(self.client.clone(), key, config);
        generators.insert(slot, generator.clone());
        Ok(generator)
    }
}
