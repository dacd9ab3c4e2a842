#!/bin/bash
# t_manpage: man/mooncaked.8 documents every long option, JSON key and
# environment variable that 'mooncaked --help' prints, has the sections
# STYLE.md asks for, and lints without errors (mandoc -Tlint, else groff).
# An option counts as documented when the page spells it '--flag' or, in
# mdoc, 'Fl -flag'.  Two lists must be exact, each in its own section:
# ENVIRONMENT has an '.It Ev' item for every variable of --help and of
# src/config.c's table and for no other, and "The status file" an '.It Cm'
# item for every key fs/status.c prints and for no other.  As root with
# FUSE, the keys a live mount's status file prints must be there too;
# without, that part is left out with a note.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=60
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

PAGE=$MC_SRCDIR/man/mooncaked.8
CONFIG_C=$MC_SRCDIR/src/config.c
STATUS_C=$MC_SRCDIR/fs/status.c
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

# --- ENVIRONMENT lists exactly the table's variables -------------------------------

# section_of SH [SS]: the lines of section SH (and within it, of subsection
# SS), up to the next .Sh (or .Ss): each list is checked where it belongs,
# not anywhere in the page.
section_of() {
	awk -v sh="$1" -v ss="${2:-}" '
		/^\.Sh / { in_sh = ($0 == ".Sh " sh || $0 == ".Sh \"" sh "\"")
			    in_ss = (ss == ""); next }
		/^\.Ss / { if (ss != "") in_ss = ($0 == ".Ss " ss); else if (in_sh) print; next }
		in_sh && in_ss
	' "$PAGE"
}

# the words after each '.It Ev' or '.It Cm' (and after each further 'Ev' or
# 'Cm' on that line, for an item of several)
items_of() {
	grep -E "^\.It $1 " | grep -oE "(^\.It | )$1 [A-Za-z0-9_]+" |
		awk '{ print $NF }' | sort -u
}

# not_in MESSAGE A_FILE B_FILE: MESSAGE, with %s as the line, for every
# line of A that B lacks (both sorted)
not_in() {
	local m
	while read -r m; do
		missing+=("${1//%s/$m}")
	done < <(comm -23 "$2" "$3")
}

# compare WHAT WHERE WANT_FILE HAVE_FILE: every line of WANT in HAVE and
# no more
compare() {
	not_in "$1 %s is not listed in $2" "$3" "$4"
	not_in "$1 %s is listed in $2 but does not exist" "$4" "$3"
}

section_of ENVIRONMENT >"$MC_TEST_DIR/env.section"
[ -s "$MC_TEST_DIR/env.section" ] || fail "no ENVIRONMENT section in $PAGE"
items_of Ev <"$MC_TEST_DIR/env.section" >"$MC_TEST_DIR/env.have"
grep -oE '\.env = "[A-Z0-9_]+"' "$CONFIG_C" | sed 's/.*"\(.*\)"/\1/' |
	sort -u >"$MC_TEST_DIR/env.table"
[ "$(wc -l <"$MC_TEST_DIR/env.table")" -ge ${#envs[@]} ] ||
	fail "found fewer variables in $CONFIG_C than in --help: has the table's format changed?"
printf '%s\n' "${envs[@]}" | sort -u - "$MC_TEST_DIR/env.table" \
	>"$MC_TEST_DIR/env.want"
compare "environment variable" ENVIRONMENT "$MC_TEST_DIR/env.want" \
	"$MC_TEST_DIR/env.have"

# --- "The status file" lists exactly the keys status.c prints ---------------------

section_of "FILESYSTEM SEMANTICS" "The status file" >"$MC_TEST_DIR/status.section"
[ -s "$MC_TEST_DIR/status.section" ] ||
	fail "no subsection \"The status file\" under FILESYSTEM SEMANTICS in $PAGE"
items_of Cm <"$MC_TEST_DIR/status.section" >"$MC_TEST_DIR/status.have"
# every "key: " a format string of status.c starts a line with, the keys
# only a cluster prints (segment) included
grep -oE '(fprintf\(f, "|\\n)[a-z_]+: ' "$STATUS_C" |
	sed -E 's/^(fprintf\(f, "|\\n)//; s/: $//' | sort -u >"$MC_TEST_DIR/status.source"
[ "$(wc -l <"$MC_TEST_DIR/status.source")" -ge 20 ] ||
	fail "found only $(wc -l <"$MC_TEST_DIR/status.source") keys in $STATUS_C: has its format changed?"
compare "status key" '"The status file"' "$MC_TEST_DIR/status.source" \
	"$MC_TEST_DIR/status.have"

# What a live mount prints, as a check on the source's reading above.
if why=$(mc_why_no_root_fuse); then
	note "$why: the status keys are checked against $STATUS_C only, not a live mount"
else
	mc_start --global-segment-size 64MiB
	cat "$MNT/.mooncake/status" >"$MC_TEST_DIR/status.live" ||
		fail "cat $MNT/.mooncake/status"
	mc_stop
	sed -n 's/^\([a-z_]*\): .*/\1/p' "$MC_TEST_DIR/status.live" |
		sort -u >"$MC_TEST_DIR/status.keys"
	[ "$(wc -l <"$MC_TEST_DIR/status.keys")" -ge 20 ] ||
		fail "the live status file has only $(wc -l <"$MC_TEST_DIR/status.keys") keys: $(cat "$MC_TEST_DIR/status.live")"
	not_in "status key %s, printed by a live mount, is not listed in \"The status file\"" \
		"$MC_TEST_DIR/status.keys" "$MC_TEST_DIR/status.have"
	not_in "status key %s (printed by a live mount) is not in $STATUS_C's format strings: fix this test's reading of it" \
		"$MC_TEST_DIR/status.keys" "$MC_TEST_DIR/status.source"
fi

if [ ${#missing[@]} -gt 0 ]; then
	for m in "${missing[@]}"; do
		note "man/mooncaked.8: $m"
	done
	fail "${#missing[@]} environment variable(s) or status key(s) wrong in $PAGE"
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
