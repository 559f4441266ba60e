#!/bin/sh
# build-deb.sh STAGE OUTDIR VERSION
#
# Turns a staged installation (`make install DESTDIR=STAGE PREFIX=/usr`) into
# OUTDIR/nsgroup_VERSION_ARCH.deb with dpkg-deb. `make deb` calls it. It needs
# dpkg-dev (dpkg-shlibdeps, dpkg-parsechangelog) and binutils (strip). It does
# not need fakeroot: dpkg-deb --root-owner-group records every file as
# root:root, whoever builds.
set -eu

if [ $# -ne 3 ]; then
    echo "usage: $0 STAGE OUTDIR VERSION" >&2
    exit 2
fi
stage=$1
outdir=$2
version=$3
here=$(cd "$(dirname "$0")" && pwd)
arch=$(dpkg --print-architecture)

fail() { echo "build-deb: $*" >&2; exit 1; }

[ -x "$stage/usr/sbin/nsgroupd" ] || fail "$stage is not an installation with PREFIX=/usr (no usr/sbin/nsgroupd)"
changelog_version=$(dpkg-parsechangelog -l "$here/changelog" -S Version)
[ "$changelog_version" = "$version" ] ||
    fail "packaging/debian/changelog is at $changelog_version, the sources at $version: add a changelog entry"
maintainer=$(dpkg-parsechangelog -l "$here/changelog" -S Maintainer)

# Debian's rules for shipped files: stripped ELF objects, man pages and the
# changelog compressed with gzip -9n (no timestamp, so builds are reproducible).
# `make install` strips the programs already; this also catches a stage made
# some other way, and removes the .note section as dh_strip does.
find "$stage" -type f -perm -u+x | while read -r file; do
    if [ "$(head -c 4 "$file" | od -An -c | tr -d ' ')" = '177ELF' ]; then
        strip --strip-unneeded --remove-section=.comment --remove-section=.note "$file"
    fi
done
find "$stage/usr/share/man" -type f ! -name '*.gz' -exec gzip -9nf {} +

doc="$stage/usr/share/doc/nsgroup"
install -d -m 0755 "$doc"
install -m 0644 "$here/copyright" "$doc/copyright"
gzip -9n <"$here/changelog" >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"
install -D -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/nsgroup"

# Shared libraries the dynamically linked programs need (nsgroupd: libsystemd0,
# libstdc++6, libgcc-s1, libc6; nsgroup and nsgroup-holder are fully static).
# dpkg-shlibdeps expects to run in a source tree, so it gets a minimal one.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/debian"
printf 'Source: nsgroup\n\nPackage: nsgroup\nArchitecture: any\n' >"$work/debian/control"
elves=""
for file in "$stage/usr/bin/"* "$stage/usr/sbin/"* "$stage/usr/libexec/nsgroup/"*; do
    elves="$elves $(realpath "$file")"
done
# shellcheck disable=SC2086 # one argument per program
(cd "$work" && dpkg-shlibdeps -O -e$elves) >"$work/substvars" 2>"$work/shlibdeps.log" ||
    { cat "$work/shlibdeps.log" >&2; fail "dpkg-shlibdeps failed"; }
depends=$(sed -n 's/^shlibs:Depends=//p' "$work/substvars")
[ -n "$depends" ] || fail "dpkg-shlibdeps found no dependencies (is nsgroupd linked statically now?)"

control="$stage/DEBIAN"
rm -rf "$control"
install -d -m 0755 "$control"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$control/$script"
done
install -m 0644 "$here/conffiles" "$control/conffiles"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$control/md5sums"
chmod 0644 "$control/md5sums"
installed_size=$(du -k -s --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@DEPENDS@|$depends|" \
    "$here/control.in" >"$control/control"
chmod 0644 "$control/control"

mkdir -p "$outdir"
deb="$outdir/nsgroup_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
