//! `crdgen`: prints the ModelServer CRD as YAML (`make crds` writes it to the repository).

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match modelserver_crds::generate::crd_yaml() {
        Ok(yaml) => match std::io::stdout().write_all(yaml.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("crdgen: writing the CRD: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("crdgen: serializing the CRD: {error}");
            ExitCode::FAILURE
        }
    }
}
