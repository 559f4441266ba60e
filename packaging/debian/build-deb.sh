#!/bin/sh
# build-deb.sh STAGE OUTDIR VERSION [UNSTRIPPED]
#
# Turns a staged installation (`make install DESTDIR=STAGE PREFIX=/usr`) into
# OUTDIR/nsgroup_VERSION_ARCH.deb with dpkg-deb. `make deb` calls it. With
# UNSTRIPPED, the directory of the same programs before stripping (the
# release build), it also makes OUTDIR/nsgroup-dbgsym_VERSION_ARCH.deb: their
# debug info under /usr/lib/debug/.build-id/, where gdb, eu-stack and
# systemd-coredump look for it by the programs' build ids, as in Debian's
# automatic -dbgsym packages. It prints the dbgsym package's path first and
# the package's path last. It needs
# dpkg-dev (dpkg-shlibdeps, dpkg-parsechangelog) and binutils (strip). It does
# not need fakeroot: dpkg-deb --root-owner-group records every file as
# root:root, whoever builds.
set -eu

if [ $# -ne 3 ] && [ $# -ne 4 ]; then
    echo "usage: $0 STAGE OUTDIR VERSION [UNSTRIPPED]" >&2
    exit 2
fi
stage=$1
outdir=$2
version=$3
unstripped=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
arch=$(dpkg --print-architecture)

fail() { echo "build-deb: $*" >&2; exit 1; }
# The GNU build id of an ELF file, in hex, or nothing.
build_id() { readelf -n "$1" 2>/dev/null | sed -n 's/^ *Build ID: *\([0-9a-f]*\)$/\1/p' | head -n 1; }

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
if [ -n "$unstripped" ]; then
    # The debug info of each program, named by the build id it shares with
    # the stripped program in the package (a mismatch means another build).
    dbg="$work/dbgsym"
    ids=""
    for file in "$stage/usr/bin/"* "$stage/usr/sbin/"* "$stage/usr/libexec/nsgroup/"*; do
        id=$(build_id "$file")
        [ -n "$id" ] || fail "$file has no build id"
        source="$unstripped/$(basename "$file")"
        [ "$(build_id "$source")" = "$id" ] || fail "$source is not the build of $file (build ids differ)"
        target="$dbg/usr/lib/debug/.build-id/$(echo "$id" | cut -c1-2)/$(echo "$id" | cut -c3-).debug"
        install -d -m 0755 "$(dirname "$target")"
        objcopy --only-keep-debug --compress-debug-sections=zlib "$source" "$target"
        chmod 0644 "$target"
        ids="$ids $id"
    done
    install -d -m 0755 "$dbg/usr/share/doc"
    ln -s nsgroup "$dbg/usr/share/doc/nsgroup-dbgsym"
    install -d -m 0755 "$dbg/DEBIAN"
    (cd "$dbg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$dbg/DEBIAN/md5sums"
    chmod 0644 "$dbg/DEBIAN/md5sums"
    {
        echo "Package: nsgroup-dbgsym"
        echo "Source: nsgroup"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $(du -k -s --apparent-size --exclude=DEBIAN "$dbg" | cut -f1)"
        echo "Depends: nsgroup (= $version)"
        echo "Section: debug"
        echo "Priority: optional"
        echo "Auto-Built-Package: debug-symbols"
        echo "Build-Ids:$ids"
        echo "Description: debug symbols for nsgroup"
    } >"$dbg/DEBIAN/control"
    chmod 0644 "$dbg/DEBIAN/control"
    dbgsym_deb="$outdir/nsgroup-dbgsym_${version}_${arch}.deb"
    dpkg-deb --root-owner-group -Zxz --build "$dbg" "$dbgsym_deb" >/dev/null
    echo "$dbgsym_deb"
fi

deb="$outdir/nsgroup_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
