/** A polite loop's lines: thanks traded back and forth, which the loop detector must stop. */
export const THANKS = [
  'Thanks so much, that was really helpful!',
  'Thank you too, great working with you!',
  'Much appreciated, thanks again!',
  'Likewise, thanks for all the help!',
  'Thanks again, really appreciate it!',
  'No problem at all, thank you!',
  'Cheers, thanks a lot!',
  'Thanks, you too!',
];
