//! The gateway config reader on arbitrary text: never a panic, and whatever it accepts
//! holds only valid server names, at most `MAX_SERVERS` of them, and no `${` it did not
//! expand (the fuzz environment sets `SET_A` to a value holding `${SET_A}` itself, so a
//! reader that expanded twice, or recursively, would show it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolgate_policy::gateway_config::{
    read_gateway_config, valid_server_name, ServerTransport, MAX_SERVERS,
};

fn env(name: &str) -> Option<String> {
    (name == "SET_A").then(|| "[${SET_A}]".to_string())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = read_gateway_config(text, &env) else {
        return;
    };
    assert!(config.servers.len() <= MAX_SERVERS);
    for server in &config.servers {
        assert!(valid_server_name(&server.name), "{:?}", server.name);
        let values: Vec<&String> = match &server.transport {
            ServerTransport::Command { argv, env, cwd } => {
                argv.iter().chain(env.values()).chain(cwd.iter()).collect()
            }
            ServerTransport::Url { url, headers } => {
                std::iter::once(url).chain(headers.values()).collect()
            }
        };
        for value in values {
            // The one `${` a value may hold is the fuzz variable's own text, inserted once,
            // or one written as `$${` in the file.
            let expanded_once = value.matches("[${SET_A}]").count();
            let literal = text.matches("$${").count();
            assert!(
                value.matches("${").count() <= expanded_once + literal,
                "{value:?} from {text:?}"
            );
        }
    }
});
