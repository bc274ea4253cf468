"""The n-body benchmark (the Computer Language Benchmarks Game's algorithm: the Sun and the
four gas giants, symplectic Euler steps of 0.01 days), written for this project as a
CPU yardstick: published Raspberry Pi figures exist for it, so timing it here says how
many of this machine's cores a Pi core is worth (bench/pi.py).

    python -m bench.nbody 500000      # prints steps, wall and CPU seconds, energy
"""
import json
import math
import sys
import time

YEAR_DAYS = 365.24
SOLAR_MASS = 4 * math.pi * math.pi

# name: position (AU), velocity (AU per day), mass (solar masses)
PLANETS = {
    'jupiter': ((4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01),
                (1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05),
                9.54791938424326609e-04),
    'saturn': ((8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01),
               (-2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05),
               2.85885980666130812e-04),
    'uranus': ((1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01),
               (2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05),
               4.36624404335156298e-05),
    'neptune': ((1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01),
                (2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05),
                5.15138902046611451e-05),
}


def system():
    """[[x, y, z], [vx, vy, vz], mass] per body, the Sun first, velocities in AU/year."""
    bodies = [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], SOLAR_MASS]]
    for position, velocity, mass in PLANETS.values():
        bodies.append([list(position), [v * YEAR_DAYS for v in velocity], mass * SOLAR_MASS])
    # The Sun moves so that the system's momentum is zero.
    for axis in range(3):
        momentum = sum(b[1][axis] * b[2] for b in bodies)
        bodies[0][1][axis] = -momentum / SOLAR_MASS
    return bodies


def energy(bodies):
    total = 0.0
    for i, (p, v, m) in enumerate(bodies):
        total += 0.5 * m * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
        for q, _, n in bodies[i + 1:]:
            total -= m * n / math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2
                                       + (p[2] - q[2]) ** 2)
    return total


def advance(bodies, steps, dt=0.01):
    pairs = [(bodies[i], bodies[j]) for i in range(len(bodies))
             for j in range(i + 1, len(bodies))]
    for _ in range(steps):
        for (p1, v1, m1), (p2, v2, m2) in pairs:
            dx, dy, dz = p1[0] - p2[0], p1[1] - p2[1], p1[2] - p2[2]
            d2 = dx * dx + dy * dy + dz * dz
            scale = dt / (d2 * math.sqrt(d2))
            a, b = m2 * scale, m1 * scale
            v1[0] -= dx * a
            v1[1] -= dy * a
            v1[2] -= dz * a
            v2[0] += dx * b
            v2[1] += dy * b
            v2[2] += dz * b
        for p, v, _ in bodies:
            p[0] += dt * v[0]
            p[1] += dt * v[1]
            p[2] += dt * v[2]


def run(steps):
    bodies = system()
    started, cpu = time.perf_counter(), time.process_time()
    advance(bodies, steps)
    return {'steps': steps, 'seconds': round(time.perf_counter() - started, 3),
            'cpu_seconds': round(time.process_time() - cpu, 3),
            'energy': round(energy(bodies), 9)}


if __name__ == '__main__':
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 500000)))
