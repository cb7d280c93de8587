#!/usr/bin/perl
# SpamAssassin's own Received parse, the reference for bench/analysis.
#
# Usage: sa_relays.pl REPEAT FILE...
# Loads SpamAssassin with no rules and no plugins (config_text is empty, so no rule or
# .pre file is read), reads every FILE into memory first, then times only the loop:
# parse the message, build its PerMsgStatus, extract_message_metadata() (which runs
# parse_received_headers and fills X-Spam-Relays-*), and free it. The whole list is
# walked REPEAT times. Prints one JSON object: messages, seconds (wall), cpu_seconds (this
# process's CPU time over the same loop), relays (a count, to
# prove the parse did its work) and the X-Spam-Relays-Untrusted value of the first file.
use strict;
use warnings;
use Mail::SpamAssassin;
use Mail::SpamAssassin::PerMsgStatus;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC CLOCK_PROCESS_CPUTIME_ID);

my ($repeat, @files) = @ARGV;
die "usage: $0 REPEAT FILE...\n" unless defined $repeat && $repeat =~ /^\d+$/ && @files;

my $sa = Mail::SpamAssassin->new({
    config_text          => "# bench: no rules, no plugins\n",
    require_rules        => 0,
    dont_copy_prefs      => 1,
    local_tests_only     => 1,
    ignore_site_cf_files => 1,
    userprefs_filename   => '/dev/null',
    username             => 'bench',
});
$sa->init(0);

my @texts;
for my $file (@files) {
    open(my $fh, '<:raw', $file) or die "$file: $!\n";
    local $/;
    push @texts, scalar <$fh>;
    close $fh;
}

my ($messages, $relays, $first) = (0, 0, undef);
my $start = clock_gettime(CLOCK_MONOTONIC);
my $cpu_start = clock_gettime(CLOCK_PROCESS_CPUTIME_ID);
for (1 .. $repeat) {
    for my $text (@texts) {
        my $msg = $sa->parse($text, 1);
        my $pms = Mail::SpamAssassin::PerMsgStatus->new($sa, $msg);
        $msg->extract_message_metadata($pms);
        my $untrusted = $msg->get_metadata('X-Spam-Relays-Untrusted') // '';
        my $trusted = $msg->get_metadata('X-Spam-Relays-Trusted') // '';
        $relays += () = ($untrusted . ' ' . $trusted) =~ /\[ ip=/g;
        $first //= $untrusted;
        $pms->finish();
        $msg->finish();
        $messages++;
    }
}
my $seconds = clock_gettime(CLOCK_MONOTONIC) - $start;
my $cpu_seconds = clock_gettime(CLOCK_PROCESS_CPUTIME_ID) - $cpu_start;

$first =~ s/(["\\])/\\$1/g;
$first =~ s/[\x00-\x1f]/ /g;
printf "{\"messages\":%d,\"seconds\":%.6f,\"cpu_seconds\":%.6f,\"relays\":%d,\"first_untrusted\":\"%s\"}\n",
    $messages, $seconds, $cpu_seconds, $relays, $first;
