#!/usr/bin/env bash
# Compile check of the Autoland Bugzilla extension, without a Bugzilla: `perl -c` of
# every .pm of extensions/Autoland (and of t/client.pl) against the stub Bugzilla
# modules in t/stubs. One line per file; exits non-zero if any file fails.
#
# Bugzilla loads Bugzilla::Extension::Autoland::Client from
# extensions/Autoland/lib/Client.pm; the stub Bugzilla::Extension (loaded first with
# -M) installs the same mapping. Templates are parsed too when Template Toolkit is
# installed (it is not needed otherwise).
set -u
t_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$t_dir")                 # contrib/bugzilla
extension="$root/extensions/Autoland"
failures=0

check() {                                # check LABEL COMMAND...
    local label=$1 output
    shift
    if output=$("$@" 2>&1); then
        echo "ok   $label"
    else
        echo "FAIL $label"
        printf '%s\n' "$output" | sed 's/^/       /'
        failures=$((failures + 1))
    fi
}

while IFS= read -r file; do
    check "${file#"$root"/}" perl -w -I "$t_dir/stubs" -MBugzilla::Extension -c "$file"
done < <(find "$extension" -name '*.pm' | sort)

check "t/client.pl" perl -w -c "$t_dir/client.pl"

if perl -MTemplate::Parser -e 1 2>/dev/null; then
    while IFS= read -r file; do
        check "${file#"$root"/}" perl -MTemplate::Parser -e '
            local $/;
            open(my $fh, "<", $ARGV[0]) or die "$ARGV[0]: $!\n";
            my $parser = Template::Parser->new;
            defined $parser->parse(<$fh>) or die $parser->error, "\n";
        ' "$file"
    done < <(find "$extension/template" -name '*.tmpl' | sort)
else
    echo "skip templates (Template Toolkit is not installed)"
fi

for expected in Config.pm Extension.pm lib/Client.pm lib/Params.pm; do
    if [ ! -f "$extension/$expected" ]; then
        echo "FAIL extensions/Autoland/$expected is missing"
        failures=$((failures + 1))
    fi
done
[ "$failures" -eq 0 ]
