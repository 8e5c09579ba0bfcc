//! One contract: the shell registers exactly the commands `api::cmd` names, no more, no fewer.

#[test]
fn the_shell_registers_every_command_api_names() {
    let source = include_str!("../../src-tauri/src/lib.rs");
    let start = source.find("generate_handler![").expect("the shell registers its commands");
    let list = &source[start + "generate_handler![".len()..];
    let list = &list[..list.find(']').unwrap()];
    let mut registered: Vec<&str> =
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    registered.sort();
    let mut named: Vec<&str> = api::cmd::ALL.to_vec();
    named.sort();
    assert_eq!(registered, named);
    // Each registered command is a `#[tauri::command]` function of that name.
    for name in named {
        assert!(
            source.contains(&format!("#[tauri::command]\nasync fn {name}("))
                || source.contains(&format!("#[tauri::command]\nfn {name}(")),
            "{name} is not a command function"
        );
    }
}
