"""One config model, validated at load: sections, table rules, TOML line lookup, the example, secrets."""
