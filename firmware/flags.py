"""Feature flags, switchable at run time, with rollout to named customers or a share.

A flag is on for a request when: its environment variable says so (JAFFLR_FLAG_<NAME>,
`on`/`off`; it wins over everything), else the customer is named in its list, else the
customer's stable hash falls under its rollout percentage, else its `enabled` value.
"""
import hashlib
from dataclasses import asdict, dataclass, field

from .errors import InvalidRequest, NotFound

KNOWN = {
    'pick-v2': ('take stock with one chillybin v2 reservation per toastie (all or nothing); '
                'off: one v1 /pick per ingredient, as the original project did', True),
}


@dataclass
class Flag:
    name: str
    enabled: bool
    customers: list = field(default_factory=list)
    percent: int = 0
    description: str = ''


def env_name(flag):
    return 'JAFFLR_FLAG_' + flag.upper().replace('-', '_')


class Flags:
    def __init__(self, stored, env):
        """`stored`: {name: dict} as saved; `env`: the environment at start."""
        self._flags = {}
        for name, (description, default) in KNOWN.items():
            saved = stored.get(name, {})
            self._flags[name] = Flag(name, saved.get('enabled', default),
                                     list(saved.get('customers', [])), saved.get('percent', 0),
                                     description)
        self._env = {}
        for name in KNOWN:
            value = env.get(env_name(name))
            if value is not None:
                if value.lower() not in ('on', 'off', '1', '0', 'true', 'false'):
                    raise InvalidRequest(f'{env_name(name)}={value!r}: use on or off',
                                         field=env_name(name), allowed='on, off')
                self._env[name] = value.lower() in ('on', '1', 'true')

    def _get(self, name):
        try:
            return self._flags[name]
        except KeyError:
            raise NotFound(f'there is no feature flag {name!r}', field='name',
                           allowed=', '.join(sorted(self._flags))) from None

    def enabled(self, name, customer=None):
        if name in self._env:
            return self._env[name]
        flag = self._get(name)
        if customer:
            if customer in flag.customers:
                return True
            bucket = int(hashlib.sha256(f'{name}:{customer}'.encode()).hexdigest()[:8], 16) % 100
            if bucket < flag.percent:
                return True
        return flag.enabled

    def set(self, name, enabled=None, customers=None, percent=None):
        flag = self._get(name)
        if enabled is not None:
            flag.enabled = bool(enabled)
        if customers is not None:
            flag.customers = list(customers)
        if percent is not None:
            flag.percent = int(percent)
        return flag

    def describe(self, name=None):
        names = [name] if name else sorted(self._flags)
        out = []
        for n in names:
            flag = self._get(n)
            out.append({**asdict(flag), 'env_override': self._env.get(n),
                        'env_variable': env_name(n)})
        return out

    def stored(self):
        return {n: {'enabled': f.enabled, 'customers': f.customers, 'percent': f.percent}
                for n, f in self._flags.items()}
