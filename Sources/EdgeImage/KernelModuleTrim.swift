import EdgeModel

/// How a board's kept kernel modules (`Board.kernelModules`) shape the base: dpkg leaves every other
/// module of the kernel package unpacked, so the kernel package's own scripts run `depmod` and
/// build the initramfs from the kept set alone; a hook then checks the set is whole.
enum KernelModuleTrim {
    /// Where the kernel package puts its modules (trixie's kernels install under /usr).
    static let tree = "/usr/lib/modules/*/kernel/"

    /// dpkg filters (dpkg(1), `--path-exclude`): every module out, the kept paths back in. dpkg
    /// matches with fnmatch(3) without FNM_PATHNAME, so `*` also spans folders.
    static func dpkgOptions(_ modules: Board.KernelModules) -> [String] {
        guard case .only(let kept) = modules else { return [] }
        return ["path-exclude=\(tree)*"] + kept.map { path in
            path.hasSuffix("/") ? "path-include=\(tree)\(path)*" : "path-include=\(tree)\(path).ko*"
        }
    }

    /// A customize hook that stops the build, naming the path, when a kept path matches nothing in
    /// this kernel or a kept module depends on one left out (the `depends:` modpost wrote into
    /// each module, modinfo(8)), and removes the folders dpkg left empty.
    static func checkHook(_ modules: Board.KernelModules) -> [String] {
        guard case .only(let kept) = modules else { return [] }
        let fix = "(Board.kernelModules in Sources/EdgeModel/Board.swift; docs/image.md, \\\"Kernel modules\\\")"
        let script = """
            set -eu; root=$(cd "$1" && pwd); cd "$root/usr/lib/modules"; scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
            for v in *; do [ -d "$v/kernel" ] || continue
            for m in \(kept.joined(separator: " ")); do
            case "$m" in */) test -d "$v/kernel/$m" ;; *) ls "$v/kernel/$m".ko* >/dev/null 2>&1 ;; esac \\
            || { echo "E: the kept kernel module $m is not in kernel $v: correct or remove it \(fix)" >&2; exit 1; }; done
            find "$v/kernel" -depth -type d -empty -delete
            { cat "$v/modules.builtin"; cut -d: -f1 "$v/modules.dep"; } | sed 's,.*/,,; s/[.]ko.*//; s/-/_/g' >"$scratch/present"
            find "$v/kernel" -name '*.ko*' | sed "s,^,/usr/lib/modules/," | chroot "$root" xargs modinfo -k "$v" >"$scratch/modinfo"
            awk 'NR == FNR { present[$1] = 1; next } /^filename:/ { module = $2; sub(".*/", "", module); sub("[.]ko.*", "", module) }
            /^depends:/ { n = split($2, names, ","); for (i = 1; i <= n; i++) { name = names[i]; gsub("-", "_", name)
            if (name in present) continue; if (name in users) users[name] = users[name] ", " module; else users[name] = module } }
            END { for (name in users) print name " (needed by " users[name] ")" }' \\
            "$scratch/present" "$scratch/modinfo" >"$scratch/missing"
            if [ -s "$scratch/missing" ]; then echo "E: kept kernel modules need modules left out of kernel $v: \\
            $(sort "$scratch/missing" | tr '\\n' ' ')- keep them too \(fix)" >&2; exit 1; fi; done
            """
        return ["--customize-hook=" + script]
    }
}
