#!/bin/bash
# t_manpage: man/mooncaked.8 documents every long option, JSON key and
# environment variable that 'mooncaked --help' prints, has the sections
# STYLE.md asks for, and lints without errors (mandoc -Tlint, else groff).
# An option counts as documented when the page spells it '--flag' or, in
# mdoc, 'Fl -flag'.  Needs no root: nothing here mounts.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=60
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

PAGE=$MC_SRCDIR/man/mooncaked.8
HELP=$MC_TEST_DIR/help
LINT=$MC_TEST_DIR/lint

[ -x "$MC_DAEMON" ] || skip "no daemon at $MC_DAEMON (build it first: make)"
[ -f "$PAGE" ] || fail "no man page at $PAGE"

"$MC_DAEMON" --help >"$HELP" 2>&1 ||
	fail "mooncaked --help exited $?: $(head -c 400 "$HELP")"

# --- what --help prints ---------------------------------------------------------

# Long flags from the option rows only (they start with blanks and '-'), so
# the prose's "--flag VALUE" placeholder is not taken for an option.
mapfile -t flags < <(grep -E '^[[:space:]]+-' "$HELP" |
	grep -oE -- '--[a-z0-9][a-z0-9_-]*' | sort -u)
mapfile -t envs < <(grep -oE '\b(MOONCAKE|MC)_[A-Z0-9_]*[A-Z0-9]\b' "$HELP" |
	sort -u)
mapfile -t keys < <(grep -oE '\(json [a-z0-9_]+' "$HELP" |
	sed 's/^(json //' | sort -u)

# An empty list would make the checks below pass for nothing.
[ ${#flags[@]} -ge 5 ] ||
	fail "found only ${#flags[@]} long options in --help: has its format changed?"
[ ${#envs[@]} -ge 1 ] ||
	fail "found no environment variables in --help: has its format changed?"
note "--help lists ${#flags[@]} long options, ${#keys[@]} JSON keys, ${#envs[@]} environment variables"

# --- are they in the page? --------------------------------------------------------

NOT_WORD='[^A-Za-z0-9_-]'

has_flag() {
	local name=${1#--}
	grep -qE -- "(^|$NOT_WORD)--$name($NOT_WORD|\$)|(^|[[:space:].])Fl -$name($NOT_WORD|\$)" \
		"$PAGE"
}

missing=()
for f in "${flags[@]}"; do
	has_flag "$f" || missing+=("option $f")
done
for k in "${keys[@]}"; do
	grep -qw -- "$k" "$PAGE" || missing+=("JSON key $k")
done
for e in "${envs[@]}"; do
	grep -qw -- "$e" "$PAGE" || missing+=("environment variable $e")
done
if [ ${#missing[@]} -gt 0 ]; then
	for m in "${missing[@]}"; do
		note "not in man/mooncaked.8: $m"
	done
	fail "${#missing[@]} item(s) printed by 'mooncaked --help' are not documented in $PAGE"
fi

# --- sections (STYLE.md rule 24) ----------------------------------------------------

for s in NAME SYNOPSIS DESCRIPTION OPTIONS ENVIRONMENT FILES "EXIT STATUS" \
	ERRORS EXAMPLES "SEE ALSO"; do
	grep -qE "^\.Sh \"?$s\"?\$" "$PAGE" || missing+=("section $s")
done
[ ${#missing[@]} -eq 0 ] || fail "man/mooncaked.8 lacks: ${missing[*]}"

# --- lint: warnings are shown, errors fail --------------------------------------

if command -v mandoc >/dev/null 2>&1; then
	# 0 clean, 1 style, 2 warnings, 3 errors, 4 unsupported roff,
	# 5 and 6 mandoc itself failed.  "outdated mandoc.db" is about this
	# machine's man database, not the page.
	mandoc -Tlint "$PAGE" >"$LINT" 2>&1
	rc=$?
	grep -v 'mandoc\.db' "$LINT" | while read -r line; do
		note "$line"
	done
	[ $rc -lt 5 ] || hard_error "mandoc -Tlint failed to run (status $rc)"
	[ $rc -lt 3 ] || fail "mandoc -Tlint found errors in $PAGE (status $rc)"
elif command -v groff >/dev/null 2>&1; then
	groff -mandoc -ww -z "$PAGE" >"$LINT" 2>&1
	rc=$?
	while read -r line; do
		note "$line"
	done <"$LINT"
	[ $rc -eq 0 ] || fail "groff -mandoc -ww -z exited $rc on $PAGE"
	if grep -qi 'error' "$LINT"; then
		fail "groff reports errors in $PAGE"
	fi
else
	note "neither mandoc nor groff is installed: the page is not linted (apt-get install mandoc)"
fi

mc_done
