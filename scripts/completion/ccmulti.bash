# bash completion for ccmulti: subcommands, options (global and per subcommand) and node names.
# Nothing is listed here twice: subcommands and options come from the program's own --help, node names from
# `ccmulti names` (the [nodes.NAME] tables of the configuration in effect, with -C/--config as typed).
# Installed as share/bash-completion/completions/ccmulti; to try it: `source scripts/completion/ccmulti.bash`.

# The words under "Subcommands:" in `ccmulti [SUB] --help`.
_ccmulti_subcommands() {
    "$@" --help 2>/dev/null | sed -n '/^Subcommands:/,/^$/{s/^  \([a-z][a-z0-9_-]*\).*/\1/p}'
}

# Every -x and --long option of `ccmulti [SUB] --help`.
_ccmulti_options() {
    "$@" --help 2>/dev/null | sed -n 's/^  \(-[^ ]*\).*/\1/p' | tr ',' '\n' | sed -n 's/^\(--*[A-Za-z][A-Za-z0-9-]*\).*/\1/p'
}

_ccmulti() {
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    local bin=${COMP_WORDS[0]}
    COMPREPLY=()

    case $prev in
        -C | --config | --logfile | -f | --pidfile | -p | --watch)
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
        --run-dir | --log-dir | --state-dir | --workdir)
            mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            return
            ;;
    esac

    # The subcommand (and a nested one: "config show"); global options before it, with their values.
    local i sub="" nested="" global=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        local word=${COMP_WORDS[i]}
        if [[ -z $sub ]]; then
            case $word in
                -C | --config | --run-dir | --log-dir | --state-dir)
                    global+=("$word" "${COMP_WORDS[i + 1]}")
                    ((i++))
                    ;;
                -*) global+=("$word") ;;
                *) sub=$word ;;
            esac
        elif [[ -z $nested && $word != -* ]]; then
            nested=$word
        fi
    done

    local words
    if [[ -z $sub ]]; then
        if [[ $cur == -* ]]; then words=$(_ccmulti_options "$bin"); else words=$(_ccmulti_subcommands "$bin"); fi
        mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
        return
    fi
    local subs
    subs=$(_ccmulti_subcommands "$bin" "$sub")
    if [[ -n $subs && -z $nested ]]; then  # "config ⇥": check, show
        if [[ $cur == -* ]]; then words=$(_ccmulti_options "$bin" "$sub"); else words=$subs; fi
        mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
        return
    fi
    local path=("$sub")
    [[ -n $subs && -n $nested ]] && path+=("$nested")
    if [[ $cur == -* ]]; then
        words=$(_ccmulti_options "$bin" "${path[@]}")
    else
        case $sub in
            start | stop | stopwait | restart | reload | kill | status | show | names | expand | get | dirs | config)
                # Short node names (w1, not w1@host) of the configuration.
                words=$("$bin" "${global[@]}" names 2>/dev/null | sed 's/@.*//')
                ;;
        esac
    fi
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
}

complete -F _ccmulti ccmulti
