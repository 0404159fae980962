# KeelOS A/B slot selection for U-Boot (RAUC variable scheme; docs/bootloaders.md).
# Build: mkimage -A arm64 -T script -C none -d boot.cmd boot.scr
#
# State in the U-Boot environment, written by keel-agent (fw_setenv-compatible):
#   BOOT_ORDER    slots to try, first first ("A B" or "B A")
#   BOOT_X_LEFT   boot attempts left for slot X (hex, as setexpr writes it); 3 = committed
#   BOOT_TRIAL    the slot on trial (set with the write that arms the trial, unset once keel-agent marks
#                 that slot good or bad); read here, never written
# Each boot boots the first slot in BOOT_ORDER that has attempts left. Only the slot named in BOOT_TRIAL
# spends one, and the environment is saved before the kernel starts, so a hang or power cut during the
# trial counts as its failed attempt. A committed slot (not on trial) is booted without spending any:
# power cuts and resets while it boots never move the board off it, to the older slot or anywhere else.
# keel-agent refills the counter once the health checks pass. With no attempts left anywhere, the
# counters are refilled and the board resets; the slot on trial is not refilled while another slot is in
# BOOT_ORDER, so power cuts during the fallback boots of a failed trial never give that slot new attempts.
#
# Settings (environment variables; when unset, the hush-local defaults below apply and are not saved):
#   keel_dev            mmc device number holding the slots
#   keel_part_A/_B      partition of each slot (kernel at /boot/Image, dtb at /boot/board.dtb)
#   keel_bootargs       extra kernel arguments

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3
# Only the three BOOT_* variables are ever added to the environment (saveenv below stores them); the
# settings use hush-local variables so the saved environment stays exactly what keel-agent expects.
if test -z "${keel_dev}"; then keel_dev=0; fi
if test -z "${keel_part_A}"; then keel_part_A=2; fi
if test -z "${keel_part_B}"; then keel_part_B=3; fi
if test -z "${keel_bootargs}"; then keel_bootargs="ro quiet panic=60"; fi

# keel_slot is a hush shell variable, not an environment variable, so saveenv does not store it. U-Boot's
# hush cannot empty a variable (`keel_slot=` leaves the old value), and this script can run twice in one
# session (distro boot goes on to the next boot target when booti returns), so "none" stands for unset.
keel_slot=none
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${keel_slot}" != "xnone"; then
    # a slot was already chosen: skip the rest
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      echo "keel: slot A, ${BOOT_A_LEFT} attempts left"
      if test "x${BOOT_TRIAL}" = "xA"; then setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1; fi
      keel_slot=A
      keel_part=${keel_part_A}
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      echo "keel: slot B, ${BOOT_B_LEFT} attempts left"
      if test "x${BOOT_TRIAL}" = "xB"; then setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1; fi
      keel_slot=B
      keel_part=${keel_part_B}
    fi
  fi
done

if test "x${keel_slot}" != "xnone"; then
  # Before the kernel starts: a trial's attempt is consumed even if the boot never finishes.
  saveenv
  setenv bootargs "root=PARTLABEL=keel-${keel_slot} ${keel_bootargs} keel.slot=${keel_slot}"
  load mmc ${keel_dev}:${keel_part} ${kernel_addr_r} /boot/Image
  load mmc ${keel_dev}:${keel_part} ${fdt_addr_r} /boot/board.dtb
  booti ${kernel_addr_r} - ${fdt_addr_r}
  # booti returns only when the slot holds no bootable kernel: the attempt is spent, so reset and let the
  # next boot fall back instead of leaving the board in distro boot's other targets.
  echo "keel: slot ${keel_slot} did not boot, resetting"
  reset
else
  echo "keel: no slot has attempts left, refilling the counters and resetting"
  # keel_other: some slot in BOOT_ORDER is not the one on trial (only then may the trial slot stay empty).
  keel_other=no
  for BOOT_SLOT in "${BOOT_ORDER}"; do
    if test "x${BOOT_SLOT}" = "xA" -o "x${BOOT_SLOT}" = "xB"; then
      if test "x${BOOT_SLOT}" != "x${BOOT_TRIAL}"; then keel_other=yes; fi
    fi
  done
  if test "x${BOOT_TRIAL}" != "xA" -o "x${keel_other}" = "xno"; then setenv BOOT_A_LEFT 3; fi
  if test "x${BOOT_TRIAL}" != "xB" -o "x${keel_other}" = "xno"; then setenv BOOT_B_LEFT 3; fi
  saveenv
  reset
fi
