# The rig around device/boot/boot.cmd (see uboot-real.ts): runs @STEPS@ boots in one U-Boot session.
# Boot n loads in<n>.txt first when the file exists (a fresh state of the BOOT_* variables); the script's
# saveenv writes out<n>.txt; its reset only echoes KEEL-RESET.
setenv keel_envaddr 0x41000000
setenv keel_save 'env export -t ${keel_envaddr}; fatwrite virtio 0:1 ${keel_envaddr} out${keel_n}.txt ${filesize}'
setenv keel_reset 'echo KEEL-RESET'
for n in @STEPS@; do
  setenv keel_n ${n}
  if load virtio 0:1 ${keel_envaddr} in${n}.txt; then
    setenv BOOT_ORDER; setenv BOOT_A_LEFT; setenv BOOT_B_LEFT; setenv BOOT_TRIAL
    env import -t ${keel_envaddr} ${filesize}
  fi
  echo KEEL-STEP ${n}
  load virtio 0:1 ${scriptaddr} keel.scr
  source ${scriptaddr}
done
echo KEEL-ALL-DONE
