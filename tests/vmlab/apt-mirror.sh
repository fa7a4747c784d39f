#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt uses, so the VM lab (build-image.sh, the Vagrant
# nodes) downloads from the same place as the machine itself — a local mirror, a caching
# proxy, a snapshot — instead of a hard-coded host. The first enabled `deb` entry for a Debian
# release suite (bookworm, trixie, stable, ...; not -security, -updates or -backports) wins,
# from /etc/apt/sources.list, then sources.list.d/*.list (one-line style) and *.sources
# (deb822) in name order. Nothing found: http://deb.debian.org/debian. ROOKERY_APT_DIR
# replaces /etc/apt (tests).
set -euo pipefail

dir="${ROOKERY_APT_DIR:-/etc/apt}"
fallback=http://deb.debian.org/debian
release='^(buster|bullseye|bookworm|trixie|forky|duke|sid|stable|oldstable|testing|unstable)$'

files=()
[[ -f "$dir/sources.list" ]] && files+=("$dir/sources.list")
for f in "$dir"/sources.list.d/*.list "$dir"/sources.list.d/*.sources; do
  [[ -f "$f" ]] && files+=("$f")
done

mirror=""
for f in "${files[@]}"; do
  if [[ "$f" == *.sources ]]; then
    # deb822: paragraphs of `Field: value` lines; `#` lines are comments.
    mirror="$(awk -v release="$release" '
      function flush() {
        if (!found && types ~ /(^| )deb( |$)/ && enabled != "no" && uri != "") {
          n = split(suites, s, " ")
          for (i = 1; i <= n; i++) if (s[i] ~ release) { print uri; found = 1; exit }
        }
        types = ""; uris = ""; suites = ""; enabled = ""; uri = ""
      }
      /^#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        field = tolower($1); sub(/:$/, "", field)
        value = $0; sub(/^[^:]*:[ \t]*/, "", value)
        if (field == "types") types = value
        else if (field == "uris") { split(value, u, " "); uri = u[1] }
        else if (field == "suites") suites = value
        else if (field == "enabled") enabled = tolower(value)
      }
      END { flush() }' "$f")"
  else
    # One-line style: `deb [options] URI SUITE COMPONENT...`.
    mirror="$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v release="$release" '
      $1 == "deb" && $3 ~ release { print $2; exit }')"
  fi
  [[ -n "$mirror" ]] && break
done

# A trailing slash would make debootstrap and apt paths `//dists`.
echo "${mirror:-$fallback}" | sed 's#/*$##'
