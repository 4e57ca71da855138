//! The canonical field vocabulary of rules, per data source.
//!
//! Names follow ECS where ECS has the concept. `user.upn` and
//! `file.code_signature.issuer` are rmmc names: ECS has no field for a user principal
//! name or a signing certificate's issuer. Every target maps these names through the
//! field map of its profile (`backends/<target>/profiles/*.yaml`).

use crate::ir::DataSource;

/// `(canonical name, what it holds)` per data source.
pub fn fields(source: DataSource) -> &'static [(&'static str, &'static str)] {
    match source {
        DataSource::FileSignature => &[
            ("@timestamp", "event time"),
            ("host.id", "device identifier"),
            ("host.name", "device name"),
            ("event.id", "report identifier of the event on the device"),
            ("file.hash.sha1", "SHA-1 of the signed file"),
            ("file.code_signature.subject_name", "signer of the file"),
            (
                "file.code_signature.issuer",
                "issuer of the signing certificate",
            ),
        ],
        DataSource::ProcessCreation => &[
            ("@timestamp", "event time"),
            ("host.id", "device identifier"),
            ("host.name", "device name"),
            ("event.id", "report identifier of the event on the device"),
            ("process.name", "file name of the new process"),
            ("process.executable", "full path of the new process's image"),
            ("process.command_line", "command line of the new process"),
            ("process.hash.sha1", "SHA-1 of the new process's image"),
            ("process.pe.company", "PE version-info company name"),
            ("process.pe.product", "PE version-info product name"),
            ("process.pe.description", "PE version-info file description"),
            (
                "process.pe.original_file_name",
                "PE version-info original file name",
            ),
            (
                "process.parent.name",
                "file name of the process that started it",
            ),
            ("process.parent.command_line", "command line of the parent"),
            ("user.name", "account that ran the process"),
            ("user.upn", "user principal name of that account"),
        ],
        DataSource::NetworkConnection => &[
            ("@timestamp", "event time"),
            ("host.id", "device identifier"),
            ("host.name", "device name"),
            ("event.id", "report identifier of the event on the device"),
            ("url.original", "remote URL or host name"),
            ("destination.ip", "remote IP address"),
            ("process.name", "file name of the process that connected"),
            ("process.executable", "full path of that process's image"),
            ("process.command_line", "command line of that process"),
            ("process.hash.sha1", "SHA-1 of that process's image"),
            (
                "process.pe.company",
                "PE version-info company name of that process",
            ),
            (
                "process.pe.product",
                "PE version-info product name of that process",
            ),
            (
                "process.pe.description",
                "PE version-info file description of that process",
            ),
            (
                "process.pe.original_file_name",
                "PE version-info original file name of that process",
            ),
            ("process.parent.name", "file name of that process's parent"),
            ("user.name", "account of the process that connected"),
            ("user.upn", "user principal name of that account"),
        ],
    }
}

/// Does the data source carry this canonical field?
pub fn has_field(source: DataSource, field: &str) -> bool {
    fields(source).iter().any(|(name, _)| *name == field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_has_time_and_device() {
        for source in DataSource::ALL {
            for f in ["@timestamp", "host.id", "host.name", "event.id"] {
                assert!(has_field(source, f), "{source} lacks {f}");
            }
        }
    }

    #[test]
    fn process_fields_exist_only_where_a_process_is_recorded() {
        assert!(!has_field(DataSource::FileSignature, "process.name"));
        assert!(!has_field(DataSource::FileSignature, "process.parent.name"));
        assert!(has_field(
            DataSource::ProcessCreation,
            "process.parent.name"
        ));
        assert!(has_field(
            DataSource::NetworkConnection,
            "process.parent.name"
        ));
    }

    #[test]
    fn names_are_unique_per_source() {
        for source in DataSource::ALL {
            let names: Vec<_> = fields(source).iter().map(|(n, _)| *n).collect();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{source}");
        }
    }
}
