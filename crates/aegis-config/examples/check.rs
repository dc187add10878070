//! `cargo run -p aegis-config --example check -- FILE`: prints the validated config or its errors.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: check FILE");
        std::process::exit(2);
    };
    match aegis_config::load(std::path::Path::new(&path), &aegis_config::process_env) {
        Ok(config) => println!("{config:#?}"),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
