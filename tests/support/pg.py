"""How the tests' PostgreSQL databases are made."""

# Test databases sort text as most installations do (initdb under en_US.UTF-8), not bytewise as the CI
# server's own databases (C.UTF-8): a language collation ignores punctuation at first, which breaks
# code that assumes `a:` < `a;`.
PG_CREATE_OPTIONS = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
